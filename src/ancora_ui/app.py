"""Ancora's Streamlit app: sign in, then the pages the user's role allows.

Run it with `uv run ancora ui` (or `make up`). Users live in the users file outside the repository
(`ancora users add --role Admin <name>` creates the first one). Pages a role may not see are not
registered at all, so they are neither in the menu nor reachable by URL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from ancora.ui.throttle import SignInThrottle
from ancora.ui.users import Page, Role, UsersFileError, UserStore, pages_for
from ancora_ui.widgets import USER_KEY, SignedIn, current_user, settings

PAGE_FILES = {
    Page.PREDICT: ("app_pages/predict.py", ":material/online_prediction:"),
    Page.MODELS: ("app_pages/models.py", ":material/model_training:"),
    Page.PIPELINES: ("app_pages/pipelines.py", ":material/account_tree:"),
    Page.MONITOR: ("app_pages/monitor.py", ":material/monitor_heart:"),
    Page.DISPATCHES: ("app_pages/dispatches.py", ":material/local_shipping:"),
    Page.TASKS: ("app_pages/tasks.py", ":material/terminal:"),
}

st.set_page_config(page_title="Ancora", page_icon=":material/forest:", layout="wide")


@st.cache_resource
def sign_in_throttle(users_file: str, max_failures: int, window_seconds: float) -> SignInThrottle:
    """One per users file and process, shared by every browser session (a new session resets nothing)."""
    return SignInThrottle(max_failures, window_seconds)


def sign_in() -> None:
    st.title("Ancora")
    st.caption("Forest cover type predictions, models, pipelines and monitoring.")
    store = UserStore(settings().ui_users_file)
    try:
        users = store.load()
    except UsersFileError as problem:
        st.error(f"The users file cannot be read: {problem}")
        st.stop()
    if not users:
        st.info(
            "No user exists yet. Create the first admin on the server with "
            "`uv run ancora users add --role Admin <name>`, then sign in here."
        )
    with st.form("sign-in"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        name = username.strip()
        config = settings()
        throttle = sign_in_throttle(
            str(store.path), config.ui_sign_in_max_failures, config.ui_sign_in_window_seconds
        )
        wait = throttle.retry_after(name)
        if wait is not None:
            st.error(f"Too many failed sign-ins for this username. Try again in {max(1, round(wait))} s.")
            st.stop()
        with throttle.checking():
            user = store.authenticate(name, password)
        if user is None:
            throttle.failed(name)
            st.error("Wrong username or password.")
        else:
            throttle.succeeded(name)
            st.session_state[USER_KEY] = SignedIn(user.username, user.role)
            st.rerun()


def sign_out() -> None:
    st.session_state.clear()


def url_path(page: Page) -> str:
    return Path(PAGE_FILES[page][0]).stem


def not_for_role(page: Page, role: Role) -> Callable[[], None]:
    """A page the role may not open: its address answers with a clear refusal, not a missing page."""

    def refuse() -> None:
        st.title(page.value)
        st.error(f"The {page.value} page is not available to the {role.value} role.")

    return refuse


user = current_user()
if user is None:
    # Every page address shows the sign-in form, so a bookmarked page opens after signing in.
    entry = [st.Page(sign_in, title="Sign in", icon=":material/login:", default=True)]
    entry += [
        st.Page(sign_in, title="Sign in", url_path=url_path(page), visibility="hidden") for page in Page
    ]
    st.navigation(entry, position="hidden").run()
else:
    with st.sidebar:
        st.markdown(f"Signed in as **{user.username}** ({user.role.value})")
        st.button("Sign out", on_click=sign_out, icon=":material/logout:")
    allowed = pages_for(user.role)
    pages = [st.Page(PAGE_FILES[page][0], title=page.value, icon=PAGE_FILES[page][1]) for page in allowed]
    pages += [
        st.Page(not_for_role(page, user.role), title=page.value, url_path=url_path(page), visibility="hidden")
        for page in Page
        if page not in allowed
    ]
    st.navigation(pages).run()
