from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from hostsite.users.forms import SignupForm


def home(request):
    return render(request, "host/home.html")


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("account")
    return render(request, "host/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def account(request):
    """The member's page: their details, and Signalpost's "Your newsletters" component."""
    return render(request, "host/account.html")
