"""Options the commands share, defined once: ``--device``, ``--text-field``, ``--json``, the model
to load, and the options of ``tinyllm train`` generated from the fields of ``TrainConfig`` and
``Config`` (a new option is one field there); ``tinyllm data`` takes the data options of the same
fields."""
import argparse
import typing
from dataclasses import fields

from ..model.config import Config
from ..train.config import MODEL, THREADS_HELP, TrainConfig


def add_device(parser, default: str = "auto") -> None:
    parser.add_argument("--device", default=default,
                        help=f"{'auto (cuda if available), ' if default == 'auto' else ''}cpu, "
                             f"cuda, cuda:N or mps (default {default})")


def add_dtype(parser) -> None:
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "int8"),
                        help="weights to run with: fp32 (default, as trained), int8 (faster "
                             "with a large head, CPU) or bf16 (AMX CPUs, GPUs); both change the "
                             "numbers slightly: docs/models.md")


def add_text_field(parser) -> None:
    field = _field("text_field")
    parser.add_argument("--text-field", default=TrainConfig.text_field, metavar="NAME",
                        help=field.metadata["help"] + " (default text)")


def add_threads(parser) -> None:
    parser.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP.replace(
        ", looked at again every few seconds", ""))


def cpu_threads(args) -> int:
    """Set PyTorch's CPU threads for a command that runs once (generate, eval, explore): the
    user's --threads or OMP_NUM_THREADS, else the CPUs other processes leave free now."""
    from ..errors import whole_number
    from ..train.cpu import ThreadGovernor
    if args.threads is not None:
        whole_number("--threads", args.threads, low=1)
    return ThreadGovernor(args.threads).threads


def add_json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_model(parser, what: str = "model directory or hub id") -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help=what)


def add_fields(parser, names) -> None:
    """``TrainConfig`` fields ``names`` as options with their help and their default."""
    defaults = TrainConfig()
    for name in names:
        f = _field(name)
        parser.add_argument(_flag_of(f), dest=name, default=getattr(defaults, name),
                            type=_value_type(f), metavar=f.metadata["metavar"],
                            choices=f.metadata["choices"], help=f.metadata["help"])


def add_config_options(parser, defaults: TrainConfig) -> None:
    """One option per field of ``TrainConfig`` and per model field (``Config``) that has a help
    text, in the field's group, with its default from ``defaults``. Every default is None in
    argparse, so that ``config_changes`` sees which options were given."""
    groups = {a.title: a for a in parser._action_groups}
    for f, default in [(f, getattr(defaults, f.name)) for f in fields(TrainConfig)
                       if f.name != "model"] + \
                      [(f, getattr(defaults.model, f.name)) for f in fields(Config)
                       if f.metadata.get("help")]:
        meta = f.metadata
        title = meta["group"] or MODEL
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        dest = f.name if title != MODEL or f in fields(TrainConfig) else "model." + f.name
        flags = [_flag_of(f), *meta["aliases"]]
        help = meta["help"]
        if "default" not in help and default is not None:
            help += f" (default {_show(default)})"
        kind = _value_type(f)
        if kind is bool:
            group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=help)
        elif kind is tuple:
            group.add_argument(*flags, dest=dest, type=float, nargs=len(default), default=None,
                               metavar="X", help=help)
        else:
            group.add_argument(*flags, dest=dest, type=kind, choices=meta["choices"],
                               default=None, metavar=meta["metavar"], help=help)


def config_changes(args, base: TrainConfig) -> dict:
    """The ``TrainConfig`` fields set on the command line; model options given become
    ``model=base.model.replace(...)`` (the sizes that follow them follow: ``Config.replace``)."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    changes = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    model = {f.name: given["model." + f.name] for f in fields(Config) if "model." + f.name in given}
    if model:
        changes["model"] = base.model.replace(**model)
    return changes


def _field(name: str):
    return next(f for f in fields(TrainConfig) if f.name == name)


def _flag_of(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _value_type(f):
    args = [a for a in typing.get_args(f.type) if a is not type(None)]
    return args[0] if args else f.type


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


__all__ = ["add_device", "add_text_field", "add_json", "add_model", "add_threads", "cpu_threads",
           "add_fields",
           "add_config_options", "config_changes"]
