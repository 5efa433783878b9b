"""Settings, read from the environment (and an optional ``.env``), with defaults that run on one machine."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARMLINE_", env_file=".env", extra="ignore")

    # The two that operators set most keep their conventional unprefixed names.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")

    state_dir: Path = ROOT / ".warmline"
    kb_path: Path = ROOT / "knowledge" / "demo" / "articles.yml"

    host: str = "127.0.0.1"
    relay_port: int = 8080
    rasa_port: int = 5005
    actions_port: int = 5055

    # Web pages of other sites allowed to use the relay (the widget's socket, the APIs), comma-separated, e.g.
    # "https://www.example.com,https://shop.example.com"; "*" allows any site. The relay's own pages are always
    # allowed, and so is http://localhost / 127.0.0.1 on the relay's port (the demo).
    allowed_origins: str = ""
    # Identity verification (docs/widget.md): the secret shared with the site's backend, which signs the signed-in
    # user's id (hex HMAC-SHA256); with `identity_required`, a chat without a valid signature is refused.
    identity_secret: SecretStr | None = None
    identity_required: bool = False
    # What Rasa widgets send when a chat opens (rasa-webchat's initPayload): answered with the bot's greeting.
    init_payloads: str = "/get_started,/start,/init"

    # Abuse limits (handoff/ratelimit.py), in the `limits` library's notation; several windows separated by ";".
    # A person types at most a message a second or so; a whole office behind one address, far more.
    rate_customer_message: str = "5 per second; 30 per minute"  # user_uttered, per customer connection
    rate_customer_message_address: str = "300 per minute"  # user_uttered, per client address
    rate_session_request: str = "10 per minute"  # per customer connection (reloads, reconnects)
    rate_session_request_address: str = "120 per minute"
    rate_customer_signal: str = "10 per second; 240 per minute"  # typing and read receipts, per connection
    rate_customer_signal_address: str = "1200 per minute"
    rate_agent_event: str = "20 per second; 600 per minute"  # every event of one agent socket
    rate_login_address: str = "20 per minute; 200 per hour"  # login attempts from one address
    # Failed logins of one account: the windows grow, so a lockout grows too (a minute, a quarter hour, a day);
    # a successful login clears them.
    rate_login_failures: str = "5 per minute; 10 per 15 minutes; 30 per day"
    # How many proxies (load balancers) in front of the relay may set X-Forwarded-For: 0 trusts none.
    proxies_count: int = 0
    # An agent's login lasts this long after its last use (sliding), then the agent logs in again.
    token_idle_hours: float = 12.0

    # A chat message longer than this is refused, not truncated: the customer sees why and can resend.
    max_message_chars: int = 4000
    # Failed bot turns in one conversation before it hands over to a person, even if they were not consecutive.
    max_failed_turns: int = 3
    # Seconds of quiet after a KB publish before the action server retrains Rasa and hot-loads the model, so new
    # articles become Rasa intents too (answers are live at once without it). 0 = off: training takes a CPU core
    # for about a minute, and with several action-server processes each would train; use `warmline train --load`.
    kb_auto_retrain_s: float = 0.0
    # After a publish has been quiet for a few seconds, the action server fine-tunes the sentence encoder on the
    # KB's questions in the background (knowledge/finetune.py) and swaps the tuned retriever in; answers are live
    # at once with the current encoder. Off: the frozen encoder only (less CPU; e.g. benchmarks of other paths).
    kb_fine_tune: bool = True

    # How long the relay waits for Rasa before telling the customer the bot is unavailable.
    rasa_timeout_s: float = 10.0

    # Reports and feedback (docs/reports.md).
    # After each KB answer the bot asks "Did that answer your question?" with yes / no quick replies.
    kb_answer_feedback: bool = True
    # The agent's copilot: KB suggestions for every customer message in the human phase (docs/copilot.md). Off, the
    # action server ranks nothing for agents (a team that does not want them saves that CPU).
    copilot: bool = True
    # A bot-only chat quiet this long (seconds) is asked for a 1-5 rating once, if its page is still open; 0 = off.
    chat_rating_idle_s: float = 300.0
    # The "handoff health" panel flags CSAT of escalated (or transferred) chats lower than bot-only by more than
    # this many percentage points, and handle time after a transfer longer than first segments' by more than this %.
    reports_csat_margin_pts: float = 10.0
    reports_handle_margin_pct: float = 20.0
    # GET /metrics (Prometheus) needs "Authorization: Bearer <token>"; unset, /metrics answers 404.
    metrics_token: str | None = None
    # One JSON object per log line (for a log shipper) instead of plain text.
    json_logs: bool = False

    @property
    def db_url(self) -> str:
        if self.database_url:
            return normalize_db_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.state_dir / 'warmline.db'}"

    @property
    def origins(self) -> list[str]:
        demo = [f"http://{host}:{self.relay_port}" for host in ("localhost", "127.0.0.1", self.host)]
        return sorted({*demo, *(o.strip() for o in self.allowed_origins.split(",") if o.strip())})

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.host}:{self.actions_port}/webhook"

    @property
    def relay_url(self) -> str:
        return f"http://{self.host}:{self.relay_port}"

    @property
    def rasa_python(self) -> Path:
        """Rasa runs in an environment of its own (its pins clash with ours): see docs/architecture.md."""
        return ROOT / ".venv-rasa" / "bin" / "python"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"


def normalize_db_url(url: str) -> str:
    """Accept the usual ``postgresql://`` and ``sqlite:///`` forms and pick the async drivers we ship."""
    for plain, async_form in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return async_form + url[len(plain) :]
    return url
