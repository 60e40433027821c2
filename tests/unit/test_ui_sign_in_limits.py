"""Password guessing at the Streamlit sign-in form is bounded (issue #15): the attack through the
real app (AppTest, a real Argon2 users file), and the throttle's rules with a clock of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from ancora.config import get_settings
from ancora.locations import ui_script
from ancora.ui.throttle import SignInThrottle
from ancora.ui.users import Role, UserStore
from ancora_ui.widgets import USER_KEY, SignedIn
from tests.support.fake_services import FakeStack, fake_stack, sample_airflow, sample_registry

APP = ui_script()
PASSWORD = "correct horse battery"
WINDOW = 600.0


@pytest.fixture(scope="module")
def running_fakes() -> Iterator[FakeStack]:
    with fake_stack() as stack:
        yield stack


@pytest.fixture
def users(running_fakes: FakeStack, monkeypatch: pytest.MonkeyPatch) -> UserStore:
    running_fakes.reset()
    for name, value in running_fakes.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANCORA_UI_SIGN_IN_MAX_FAILURES", "3")
    monkeypatch.setenv("ANCORA_UI_SIGN_IN_WINDOW_SECONDS", str(WINDOW))
    get_settings.cache_clear()
    sample_airflow(running_fakes.airflow)
    sample_registry(running_fakes.mlflow)
    store = UserStore(get_settings().ui_users_file)
    store.add("sam", Role.SHOWROOM_USER, PASSWORD)
    store.add("ada", Role.ADMIN, PASSWORD)
    return store


def sign_in(username: str, password: str) -> AppTest:
    """A new browser session each time, as a guessing script would open."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def errors(at: AppTest) -> str:
    return "\n".join(str(element.value) for element in at.error)


def test_guessing_a_password_locks_the_username_even_for_the_right_password(users: UserStore) -> None:
    for guess in ("123456", "password", "letmein"):
        assert "Wrong username or password." in errors(sign_in("sam", guess))
    locked = sign_in("sam", PASSWORD)
    assert USER_KEY not in locked.session_state
    assert "Too many failed sign-ins for this username. Try again in" in errors(locked)

    other = sign_in("ada", PASSWORD)  # another user is not affected
    assert other.session_state[USER_KEY] == SignedIn("ada", Role.ADMIN)

    for guess in ("a", "b", "c"):  # an unknown name is locked the same way: no hint that it is unknown
        sign_in("nobody", guess)
    assert "Too many failed sign-ins" in errors(sign_in("nobody", "d"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lock_lifts_as_failures_age_out_and_a_success_clears_them() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=3, window_seconds=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("sam") is None
        throttle.failed("sam")
        clock.now += 10
    assert throttle.retry_after("sam") == pytest.approx(30)  # the first failure leaves the window at 1060
    clock.now += 31
    assert throttle.retry_after("sam") is None
    throttle.failed("sam")
    assert throttle.retry_after("sam") is not None
    throttle.succeeded("sam")
    assert throttle.retry_after("sam") is None


def test_the_names_it_remembers_are_bounded() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=1, window_seconds=60, max_tracked=100, clock=clock)
    for index in range(10_000):
        throttle.failed(f"user{index}")
    assert len(throttle._failures) == 100
    assert throttle.retry_after("user9999") is not None
    assert throttle.retry_after("user0") is None  # forgotten first
