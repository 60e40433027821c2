"""Streamlit pieces every page shares: the signed-in user, the clients, and readable errors.

A service that is down is always reported the same way: which service, what it said, and the
command that starts it. No page shows a stack trace for a failed call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from ancora.clients.airflow import AirflowClient, AirflowError
from ancora.clients.health import HOW_TO_START, SERVICE_NAMES
from ancora.clients.inference import InferenceClient, InferenceError
from ancora.clients.mlflow import MlflowError, MlflowRestClient
from ancora.config import Settings, get_settings
from ancora.ui.users import Page, Role, UsersFileError, UserStore, pages_for

USER_KEY = "ancora_user"


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: Role


def settings() -> Settings:
    return get_settings()


def current_user() -> SignedIn | None:
    value = st.session_state.get(USER_KEY)
    return value if isinstance(value, SignedIn) else None


def require_page(page: Page) -> SignedIn:
    """Stop the page unless the signed-in role may see it (navigation already hides it; this is the
    second lock, for a page reached some other way)."""
    user = current_user()
    if user is None:
        st.warning("Please sign in first.")
        st.stop()
    try:
        stored = UserStore(settings().ui_users_file).load().get(user.username)
    except UsersFileError as problem:
        st.error(f"The users file cannot be read: {problem}")
        st.stop()
    if stored is None or stored.role is not user.role:
        st.session_state.pop(USER_KEY, None)
        st.warning("Your account was changed or removed: please sign in again.")
        st.stop()
    if page not in pages_for(user.role):
        st.error(f"The {page.value} page is not available to the {user.role.value} role.")
        st.stop()
    return user


def inference_client() -> InferenceClient:
    client = InferenceClient.from_settings(settings())
    user = current_user()
    return client.as_user(user.username) if user is not None else client


def mlflow_client() -> MlflowRestClient:
    return MlflowRestClient.from_settings(settings())


def airflow_client() -> AirflowClient:
    current = settings()
    return AirflowClient.from_settings(current, timeout=current.ui_http_timeout_seconds)


def service_down(service: str, problem: Exception) -> None:
    """The one way a page says a service failed: its name, what happened, and how to start it."""
    name = SERVICE_NAMES.get(service, service)
    unreachable = getattr(problem, "status_code", 0) == 0
    if unreachable:
        st.error(
            f"**{name[0].upper()}{name[1:]} is not reachable.** {problem}\n\n"
            f"How to fix: {HOW_TO_START[service]}."
        )
    else:
        st.error(f"**{name[0].upper()}{name[1:]} answered with an error.** {problem}")


@contextmanager
def calling(service: str) -> Iterator[None]:
    """Wrap calls to one service; a failure is shown with the service's name and the page stops."""
    try:
        yield
    except (AirflowError, InferenceError, MlflowError) as problem:
        service_down(service, problem)
        st.stop()


FLASH_KEY = "ancora_flash"


def flash(kind: str, text: str) -> None:
    """A message that survives the rerun an action triggers (success, info, warning or error)."""
    st.session_state[FLASH_KEY] = (kind, text)


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message is not None:
        kind, text = message
        getattr(st, kind)(text)
