"""The dependency-noise filter: exactly the two known messages disappear, everything else still shows."""

import logging
import subprocess
import sys
import warnings

import pytest

from ragft.core import quiet


@pytest.fixture
def bnb_records():
    """Records that reach a handler on bitsandbytes' CPU-ops logger while ragft's filter is installed."""
    quiet.install()
    logger = logging.getLogger(quiet.BNB_LOGGER)
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)
    yield logger, seen
    logger.removeHandler(handler)


def test_the_bitsandbytes_kernels_message_is_dropped_and_others_kept(bnb_records):
    logger, seen = bnb_records
    logger.warning(quiet.BNB_KERNELS_MESSAGE, "No module named 'kernels'")
    logger.warning("Failed to load CPU gemm_4bit_forward somewhere else: %s", "boom")
    logger.error("an unrelated bitsandbytes error")
    assert [r.getMessage() for r in seen] == ["Failed to load CPU gemm_4bit_forward somewhere else: boom",
                                              "an unrelated bitsandbytes error"]


def _warn_from(module: str, message: str, category=FutureWarning) -> list[str]:
    """Raise `message` as if from `module` (warnings attributes a warning to the caller's module name)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet.uninstall()
        quiet.install()  # our entry in front, as when ragft is imported
        exec(compile("import warnings\nwarnings.warn(MESSAGE, CATEGORY)", module, "exec"),
             {"__name__": module, "MESSAGE": message, "CATEGORY": category})
    return [str(w.message) for w in caught]


def test_the_gradient_checkpointing_future_warning_is_dropped_only_from_transformers():
    msg = quiet.GRADIENT_CHECKPOINTING_MESSAGE
    assert _warn_from("transformers.modeling_utils", msg) == []
    assert _warn_from("my_notebook_code", msg) == [msg]  # the same text from elsewhere still shows
    assert _warn_from("transformers.modeling_utils", msg + " Extra.") == [msg + " Extra."]  # exact text only
    assert _warn_from("transformers.modeling_utils", "another deprecation") == ["another deprecation"]
    assert _warn_from("transformers.modeling_utils", msg, DeprecationWarning) == [msg]


def test_install_is_idempotent_and_uninstall_restores_everything():
    quiet.install()
    quiet.install()
    ours = [f for f in warnings.filters if f[0] == "ignore" and f[3] is not None and "transformers" in f[3].pattern]
    assert len(ours) == 1
    assert logging.getLogger(quiet.BNB_LOGGER).filters.count(quiet._LOG_FILTER) == 1
    try:
        quiet.uninstall()
        assert not [f for f in warnings.filters if f[0] == "ignore" and f[3] is not None and "transformers" in f[3].pattern]
        assert quiet._LOG_FILTER not in logging.getLogger(quiet.BNB_LOGGER).filters
    finally:
        quiet.install()


def test_the_bitsandbytes_message_matches_the_installed_library():
    """The filter names an exact text: if bitsandbytes rewords it, this fails instead of the noise coming back."""
    import inspect

    bnb_ops = pytest.importorskip("bitsandbytes.backends.cpu.ops")
    assert bnb_ops.__name__ == quiet.BNB_LOGGER
    assert f'"{quiet.BNB_KERNELS_MESSAGE}"' in inspect.getsource(bnb_ops)


def test_a_real_transformers_model_reading_the_property_warns_nothing():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=64)
    model = transformers.LlamaForCausalLM(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # in front of ragft's entry: shows what transformers emits
        assert model.is_gradient_checkpointing is False
    assert [(w.category, str(w.message)) for w in caught] == [(FutureWarning, quiet.GRADIENT_CHECKPOINTING_MESSAGE)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.uninstall()
        quiet.install()  # in front again, as when ragft is imported
        assert model.is_gradient_checkpointing is False
    assert caught == [], [str(w.message) for w in caught]


@pytest.mark.slow
def test_importing_bitsandbytes_after_ragft_prints_nothing():
    pytest.importorskip("bitsandbytes")
    plain = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True, timeout=300)
    if "Failed to load CPU gemm_4bit_forward" not in plain.stderr:
        pytest.skip("bitsandbytes does not print the kernels message on this CPU (no avx512_bf16)")
    quiet_run = subprocess.run([sys.executable, "-c", "import ragft, bitsandbytes"], capture_output=True, text=True,
                               timeout=300)
    assert quiet_run.returncode == 0 and "gemm_4bit_forward" not in quiet_run.stderr, quiet_run.stderr
