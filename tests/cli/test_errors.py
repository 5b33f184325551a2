"""What a user who mistypes meets: a wrong option or value is one or two lines naming the
command, the option and the closest valid one; a model path that does not exist says so, not
that the hub is unreachable; `tinyllm check` without transformers names the extra to install."""
import pytest

from tinyllm.cli import main


@pytest.mark.parametrize("argv, first", [
    (["train", "--max-tme", "60"],
     "tinyllm train: error: unrecognized option --max-tme: did you mean --max-time?"),
    (["train", "--max-time", "abc"],
     "tinyllm train: error: argument --max-time: invalid float value: 'abc'"),
    (["generate", "--model", "m", "--temprature", "0"],
     "tinyllm generate: error: unrecognized option --temprature: did you mean --temperature?"),
    (["tokenizer", "train", "--data", "x", "--vocab-size", "300", "--out", "o", "--slwo"],
     "tinyllm tokenizer train: error: unrecognized option --slwo: did you mean --slow?"),
    (["trian"], "tinyllm: error: argument COMMAND: invalid choice: 'trian': did you mean train?"),
    (["train", "--arch", "lama"],
     "tinyllm train: error: argument --arch: invalid choice: 'lama': did you mean llama?"),
])
def test_a_wrong_option_is_two_lines(argv, first, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(first), lines
    assert len(lines) == 2 and lines[1].startswith("see 'tinyllm") and lines[1].endswith(
        "--help' for the options")


def test_a_model_path_that_does_not_exist_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["generate", "--model", "runs/nosuch", "Once"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm generate: error: model directory runs/nosuch does not exist")
    assert "hub" not in err.split(":")[2] and "\n" not in err


def test_check_without_transformers_names_the_extra(monkeypatch, capsys):
    from tinyllm.check import classic, common, modern
    from tinyllm.check.common import TRANSFORMERS_MISSING, Skip

    def missing():
        raise Skip(TRANSFORMERS_MISSING)
    for module in (common, classic):
        monkeypatch.setattr(module, "gpt_neo_classes", missing)
    monkeypatch.setattr(modern, "_transformers", missing)
    main(["check"])
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert "need transformers, which is not installed" in first
    assert 'pip install "tinyllm[check]"' in first
    assert 'skipped: transformers is not installed (pip install "tinyllm[check]")' in captured.out
