"""The session's rules: brokers come from one registry, preferences only tighten, IBKR
settings come from the environment and default to paper (what is traded: test_choice.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.live.helpers import make_checkpoint, preferences

from evotrader.live import session
from evotrader.live.ib.broker import IBKRBroker
from evotrader.live.session import BrokerSetup, LiveOptions, SetupError
from evotrader.live.sim_broker import SimBroker
from evotrader.training.guards import TradableCheckpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("runs") / "r" / "GOOG_stage_1_ppo.pth")


def setup_for(path: Path, **options: object) -> BrokerSetup:
    """What the session hands a broker builder for ``path`` and these options."""
    options = LiveOptions(checkpoint=path, **options)  # type: ignore[arg-type]
    config = session.runner_config(options, "GOOG")
    return BrokerSetup(options, TradableCheckpoint.load(path), config, preferences())


def test_options_need_a_checkpoint_and_never_send_the_sim_real_money() -> None:
    with pytest.raises(SetupError, match="give a symbol, an entry, a checkpoint or a strategy"):
        LiveOptions()
    with pytest.raises(SetupError, match="one"):
        LiveOptions(entry=1, checkpoint=Path("x.pth"))
    with pytest.raises(SetupError, match="--live needs --broker ibkr"):
        LiveOptions(symbol="GOOG", broker="sim", live=True)


def test_brokers_come_from_the_registry(checkpoint: Path) -> None:
    assert session.BROKERS.names() == ("ibkr", "sim")
    sim = session.build_broker(setup_for(checkpoint, broker="sim"))
    assert isinstance(sim, SimBroker) and sim.instrument.symbol == "GOOG"
    unknown = setup_for(checkpoint, broker="ftp")
    with pytest.raises(SetupError, match="unknown broker 'ftp'; available: ibkr, sim"):
        session.build_broker(unknown)


def test_ibkr_settings_come_from_the_environment_and_default_to_paper(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBKR_PORT", "4002")
    monkeypatch.setenv("IBKR_CLIENT_ID", "17")
    setup = setup_for(checkpoint, broker="ibkr")
    broker = session.build_broker(setup)
    assert isinstance(broker, IBKRBroker) and not broker.is_connected()
    assert (broker.config.port, broker.config.client_id, broker.config.live) == (4002, 17, False)
    assert broker.hours == setup.prefs.trading_hours  # daily bars close at the session end
    monkeypatch.setenv("IBKR_PORT", "7496")  # TWS's live port
    with pytest.raises(SetupError, match="live-trading port"):
        session.build_broker(setup)


def test_preferences_only_tighten(tmp_path: Path) -> None:
    assert session.tightenings(["max_daily_loss_pct=2", "allowed_instruments=[GOOG]"]) == {
        "max_daily_loss_pct": 2,
        "allowed_instruments": ["GOOG"],
    }
    with pytest.raises(SetupError, match="expected LIMIT=VALUE"):
        session.tightenings(["max_daily_loss_pct"])
    config = tmp_path / "live.yaml"
    config.write_text("lot_size: null\npolll_seconds: 1\n")
    with pytest.raises(SetupError, match=r"unknown keys \['polll_seconds'\]"):
        session.runner_config(LiveOptions(symbol="GOOG", config=config), "GOOG")
    config.write_text("lot_size: null\n")
    assert session.runner_config(LiveOptions(symbol="GOOG", config=config), "GOOG").lot_size == 1.0
    sim = LiveOptions(symbol="GOOG", config=config, broker="sim")
    assert session.runner_config(sim, "GOOG").lot_size == 0.0  # fractional units in the sim
