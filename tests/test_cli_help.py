"""`ragft --help` as a practitioner reads it (every command, examples, every default a value, no internals), `ask
--system` resolved to the evaluated arms' settings without a model, and `train --raft --index` drawing its passages
from the user's own index (the data preparation only, no training)."""

import argparse
import json

import pytest

from ragft.systems.arms import arms_for
from ragft.training.draws import TunedAdapters
from ragft.ui.cli import SUBCOMMANDS, build_parser, main
from ragft.ui.commands_ask import arm_settings, ask_preset, resolve_system
from ragft.ui.commands_train import raft_training_pairs
from ragft.ui.inputs import CliError

COMMANDS = ("index", "update", "search", "ask", "train")
INTERNALS = ("ArmSettings", "RaftRecipe", "TrainSettings", "RetrievalSettings", "notebook", "ragft.", "%(default)")


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command_and_ends_with_examples(capsys):
    out = _help(capsys)
    assert len(SUBCOMMANDS) == len(COMMANDS)
    assert all(f"    {name} " in out for name in COMMANDS)
    assert "Examples:" in out and out.rstrip().splitlines()[-1].strip().startswith("ragft ")
    assert "--system raft" in out and "--index" in out


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_states_its_default_and_names_no_internals(command, capsys):
    out = _help(capsys, command)
    assert all(word not in out for word in INTERNALS), out
    sub = _subparsers(build_parser())[command]
    required = {id(a) for g in sub._mutually_exclusive_groups if g.required for a in g._group_actions}
    missing = [a.option_strings[0] for a in sub._actions
               if a.option_strings and not isinstance(a, argparse._HelpAction) and not a.required
               and id(a) not in required and "default:" not in (a.help or "")]
    assert not missing, f"options of {command} without a stated default: {missing}"


def _fake_adapter(path):
    path.mkdir()
    (path / "adapter_config.json").write_text("{}")
    return path


@pytest.mark.parametrize("profile", ["workshop", "smoke"])
def test_system_resolves_to_the_arms_settings(tmp_path, profile):
    settings = arm_settings(profile)
    sft, raft = _fake_adapter(tmp_path / "sft"), _fake_adapter(tmp_path / "raft")
    arms = arms_for(object(), TunedAdapters(sft, raft, {}, {}, [], 0.0), settings)
    assert [a.name for a in arms] == ["base", "rag", "fine-tuned", "hybrid", "raft"]
    for arm in arms:
        preset = resolve_system(arm.name, settings)
        assert preset.retrieval == (arm.retriever is not None), arm.name
        assert {"sft": str(sft), "raft": str(raft), None: None}[preset.adapter_role] == arm.adapter, arm.name
        assert preset.tuned == (arm.prompt == "none"), arm.name
        assert (preset.top_k, preset.passage_chars, preset.contrast, preset.max_new_tokens, preset.name_check) == (
            arm.top_k, arm.passage_chars, arm.contrast, arm.max_new_tokens, arm.name_check), arm.name
        assert preset.threshold == (arm.threshold if arm.retriever is not None else None), arm.name
    assert resolve_system("raft", settings).threshold == 0.5 and resolve_system("raft", settings).contrast == 0.5
    assert settings.training.train_steps == {"workshop": 60, "smoke": 4}[profile]


def _ask(*argv):
    return build_parser().parse_args(["ask", "idx", "q?", *argv])


def test_ask_flags_change_the_arm_and_contradictions_are_refused():
    raft = ask_preset(_ask("--system", "raft", "-k", "3", "--threshold", "off", "--name-check"))
    assert (raft.top_k, raft.threshold, raft.contrast, raft.name_check, raft.adapter_role) == (3, None, 0.5, True, "raft")
    plain = ask_preset(_ask())
    assert (plain.system, plain.retrieval, plain.threshold, plain.contrast, plain.top_k) == ("custom", True, 0.5, 0.0, 2)
    tuned = ask_preset(_ask("--adapter", "somewhere", "--threshold", "0.3"))
    assert (tuned.tuned, tuned.contrast, tuned.threshold, tuned.passage_chars) == (True, 0.5, 0.3, 300)
    assert not ask_preset(_ask("--system", "base")).retrieval
    with pytest.raises(CliError, match="--no-retrieval contradicts"):
        ask_preset(_ask("--system", "rag", "--no-retrieval"))
    with pytest.raises(CliError, match="--adapter contradicts"):
        ask_preset(_ask("--system", "rag", "--adapter", "somewhere"))


def test_train_raft_draws_passages_from_the_given_index(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = {"keys.md": "Rotate the signing keys every 90 days with `vault rotate`.",
              "backup.md": "Backups run nightly at 02:00 and are kept for 30 days.",
              "deploy.md": "Deploy with `make deploy ENV=prod`; roll back with `make rollback`.",
              "oncall.md": "The on-call engineer answers pages within 15 minutes.",
              "logs.md": "Logs are shipped to the central store and kept for a year."}
    for name, text in topics.items():
        (docs / name).write_text(f"# {name[:-3]}\n\n{text}\n")
    index = tmp_path / "my.idx"
    assert main(["index", str(docs), "--out", str(index), "--embedder", "hashing", "--quiet"]) == 0
    pairs = [{"prompt": "How often are the signing keys rotated?", "completion": "Every 90 days.", "doc_id": "keys.md",
              "kind": "unchanged"},
             {"prompt": "How long are backups kept?", "completion": "30 days.", "doc_id": "backup.md",
              "kind": "unchanged"}]
    arm = arm_settings("smoke")
    out = raft_training_pairs(pairs, arm, None, str(index))
    assert len(out) == len(pairs)
    assert all(set(p["passage_ids"]) <= set(topics) and p["passage_ids"] for p in out)
    assert any("vault rotate" in p["prompt"] or "nightly" in p["prompt"] for p in out)
    json.dumps(out)  # the adapter cache hashes them
    with pytest.raises(CliError, match="no index at"):
        raft_training_pairs(pairs, arm, None, str(tmp_path / "nowhere"))
    assert main(["train", "--pairs", str(tmp_path / "x.jsonl"), "--index", str(index)]) == 2  # no such pairs file
    (tmp_path / "x.jsonl").write_text(json.dumps(pairs[0]) + "\n")
    assert main(["train", "--pairs", str(tmp_path / "x.jsonl"), "--index", str(index)]) == 2
    assert "--index gives RAFT passages: add --raft" in capsys.readouterr().err


def test_the_name_check_follows_the_system_and_a_flag_turns_it_either_way():
    assert ask_preset(_ask("--system", "raft")).name_check is True  # as the arms were evaluated
    assert ask_preset(_ask("--system", "raft", "--no-name-check")).name_check is False
    assert ask_preset(_ask("--system", "fine-tuned")).name_check is False  # no passages to check against
    assert ask_preset(_ask()).name_check is False and ask_preset(_ask("--name-check")).name_check is True
