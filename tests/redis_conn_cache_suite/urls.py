"""Log in, log out, and say who the session's user is (the session tests' URLconf)."""

from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.urls import path


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


urlpatterns = [
    path("login/", LoginView.as_view(next_page="/whoami/")),
    path("logout/", LogoutView.as_view(next_page="/whoami/")),
    path("whoami/", whoami),
]
