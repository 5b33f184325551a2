"""The model core does no I/O: importing it loads none of tinyllm's data readers or file
formats, nor safetensors or datasets (GPT.from_pretrained imports the formats layer when it is
called), and the command line answers --help without PyTorch."""
import subprocess
import sys

from tests.conftest import REPO

FORBIDDEN = ("tinyllm.data", "tinyllm.formats", "tinyllm.train", "tinyllm.tokenizer",
             "tinyllm.files", "safetensors", "datasets")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_importing_the_model_loads_no_io():
    for statement in ("import tinyllm.model", "from tinyllm.model import GPT, Config"):
        modules = loaded_after(statement)
        assert "tinyllm.model.gpt" in modules or statement == "import tinyllm.model"
        bad = sorted(m for m in modules if m.startswith(FORBIDDEN))
        assert bad == [], f"{statement} loads {bad}"


def test_the_command_line_starts_without_torch():
    modules = loaded_after("import tinyllm.cli; tinyllm.cli.build_parser()")
    assert "torch" not in modules
