"""``diffuse configs``: list, print or copy the training configs that ship with the package (as torchtune's
``tune ls`` and ``tune cp``), so a pip-installed user has them to start from."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "configs",
        help="list, show or copy the shipped training configs",
        description="The training configs that ship with diffuse-lm (the repository's configs/). "
        "`diffuse train NAME` runs one by name; `cp` copies one to edit.",
        epilog="example: diffuse configs cp smollm2-135m/rng-1-10 my-configs/ && "
        "diffuse train my-configs/rng-1-10.yaml",
    )
    verbs = p.add_subparsers(dest="verb", metavar="{list,show,cp}")
    ls = verbs.add_parser("list", help="names and one-line descriptions (the default)")
    ls.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="print a config")
    show.add_argument("name", metavar="NAME", help="a name from `diffuse configs list`")
    show.set_defaults(func=run_show)
    cp = verbs.add_parser("cp", help="copy a config to a folder or file, to edit and train from")
    cp.add_argument("name", metavar="NAME", help="a name from `diffuse configs list`")
    cp.add_argument("dest", metavar="DEST", help="folder (the file keeps its name) or .yaml file to write")
    cp.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    cp.set_defaults(func=run_cp)
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from diffuse_lm.api import builtin_configs
    from diffuse_lm.present.listings import print_configs

    print_configs(builtin_configs())
    return 0


def run_show(args: argparse.Namespace) -> int:
    from diffuse_lm.api import config_text

    print(config_text(args.name), end="")
    return 0


def run_cp(args: argparse.Namespace) -> int:
    from diffuse_lm.api import copy_config

    dest = copy_config(args.name, args.dest, overwrite=args.overwrite)
    print(f"{dest}  (diffuse train {dest})")
    return 0
