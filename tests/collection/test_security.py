"""Static security checks, by reading the files (no kernel, no root, well under a second):

1. no module or module_util runs a shell: no subprocess, os.system or os.popen, no shell=True
   or use_unsafe_shell, and run_command gets an argv list (never a string) with
   expand_user_and_vars=False, so every argument reaches the binary exactly as given;
2. roles and playbooks run no ansible.builtin.shell or raw, and command tasks give argv;
3. every role task or handler that writes a file sets owner, group and mode (a quoted octal);
4. no option that looks like a secret, in a module's argument_spec or a role's
   meta/argument_specs.yml, lacks no_log.

Each checker is also run on a bad sample, so a checker that finds nothing fails too.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
PYTHON_FILES = sorted([*(PROJECT / "plugins" / "modules").glob("*.py"), *(PROJECT / "plugins" / "module_utils").glob("*.py")])
ROLE_TASK_FILES = sorted([*PROJECT.glob("roles/*/tasks/*.yml"), *PROJECT.glob("roles/*/handlers/*.yml")])
PLAYBOOKS = sorted((PROJECT / "playbooks").glob("*.yml"))

# --- 1. no shell in Python ---------------------------------------------------------------

SHELL_MODULES = {"subprocess", "commands", "pty"}
SHELL_CALLS = {("os", "system"), ("os", "popen")}


def is_string_expression(node: ast.expr) -> bool:
    """A command line as one string: a literal, an f-string, % or + of strings, "...".join/format."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return is_string_expression(node.left) or is_string_expression(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "format"):
        return isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)
    return False


def shell_findings(source: str, name: str) -> list[str]:
    """Every way SOURCE could run a shell, as 'NAME:LINE: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in SHELL_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in SHELL_MODULES:
                found.append(f"{where}: imports from {node.module}")
            if node.module == "os":
                found += [f"{where}: imports os.{a.name}" for a in node.names if ("os", a.name) in SHELL_CALLS]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in SHELL_CALLS:
            found.append(f"{where}: uses {node.value.id}.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in ("shell", "use_unsafe_shell"):
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append(f"{where}: {node.arg}={ast.unparse(node.value)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run_command":
            if not node.args or is_string_expression(node.args[0]):
                found.append(f"{where}: run_command without an argv list: {ast.unparse(node)}")
            expand = [k for k in node.keywords if k.arg == "expand_user_and_vars"]
            if not expand or not (isinstance(expand[0].value, ast.Constant) and expand[0].value.value is False):
                found.append(f"{where}: run_command without expand_user_and_vars=False (it rewrites ~ and $VARS in arguments)")
    return found


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: p.name)
def test_no_module_runs_a_shell(path: Path) -> None:
    assert shell_findings(path.read_text(), str(path.relative_to(PROJECT))) == []


BAD_PYTHON = [
    ("import subprocess", "imports subprocess"),
    ("from subprocess import run", "imports from subprocess"),
    ("from os import system", "imports os.system"),
    ("import os\nos.popen('ls')", "uses os.popen"),
    ("m.run_command(['ls'], use_unsafe_shell=True, expand_user_and_vars=False)", "use_unsafe_shell=True"),
    ("run(['ls'], shell=flag)", "shell=flag"),
    ("m.run_command('arptables -L', expand_user_and_vars=False)", "run_command without an argv list"),
    ("m.run_command(f'arptables -i {x}', expand_user_and_vars=False)", "run_command without an argv list"),
    ("m.run_command(' '.join(argv), expand_user_and_vars=False)", "run_command without an argv list"),
    ("m.run_command('ip ' + x, expand_user_and_vars=False)", "run_command without an argv list"),
    ("m.run_command(['arptables', '-i', x])", "without expand_user_and_vars=False"),
]


@pytest.mark.parametrize(("source", "finding"), BAD_PYTHON)
def test_the_shell_scan_finds_a_bad_sample(source: str, finding: str) -> None:
    assert any(finding in f for f in shell_findings(source, "sample")), shell_findings(source, "sample")


def test_the_shell_scan_passes_an_argv_list() -> None:
    assert shell_findings("m.run_command([b, '-i', x], check_rc=True, expand_user_and_vars=False)", "sample") == []


# --- 2 and 3. roles and playbooks ----------------------------------------------------------

TASK_KEYWORDS = {
    "name", "when", "loop", "loop_control", "register", "notify", "vars", "tags", "changed_when", "failed_when", "become",
    "become_user", "environment", "listen", "block", "rescue", "always", "delegate_to", "ignore_errors", "no_log",
    "check_mode", "diff", "args", "until", "retries", "delay", "run_once", "throttle", "timeout", "any_errors_fatal",
}  # fmt: skip
SHELL_TASKS = {"shell", "raw", "script"}
# Modules that write a file and take owner, group and mode (Ansible's file common arguments).
FILE_WRITERS = {
    "template", "copy", "lineinfile", "blockinfile", "file", "get_url", "unarchive", "assemble", "replace", "tempfile",
    "community.general.ini_file", "community.general.archive", "community.general.xml", "ansible.posix.authorized_key",
}  # fmt: skip
OCTAL_MODE = re.compile(r"^0[0-7]{3}$")


def short(module: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if module.startswith(prefix):
            return module[len(prefix) :]
    return module


def tasks_of(items: Any) -> Iterator[dict[str, Any]]:
    """Every task of a task list, blocks opened."""
    for task in items or []:
        yield task
        for part in ("block", "rescue", "always"):
            yield from tasks_of(task.get(part))


def module_of(task: dict[str, Any]) -> tuple[str | None, Any]:
    keys = [k for k in task if k not in TASK_KEYWORDS and not k.startswith("with_")]
    assert len(keys) <= 1, f"task {task.get('name')!r}: cannot tell its module among {keys}"
    return (short(keys[0]), task[keys[0]]) if keys else (None, None)


def play_tasks(path: Path) -> Iterator[dict[str, Any]]:
    for play in yaml.safe_load(path.read_text()) or []:
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            yield from tasks_of(play.get(section))


def command_findings(tasks: Iterator[dict[str, Any]], where: str) -> list[str]:
    found = []
    for task in tasks:
        module, args = module_of(task)
        label = f"{where}: {task.get('name')!r}"
        if module in SHELL_TASKS:
            found.append(f"{label} runs {module}")
        elif module == "command":
            params = {**(task.get("args") or {}), **(args if isinstance(args, dict) else {})}
            if not isinstance(args, dict) or "cmd" in params or not isinstance(params.get("argv"), list):
                found.append(f"{label} gives command a command line, not argv: {args!r}")
    return found


def file_mode_findings(tasks: Iterator[dict[str, Any]], where: str) -> list[str]:
    found = []
    for task in tasks:
        module, args = module_of(task)
        if module not in FILE_WRITERS:
            continue
        params = {**(task.get("args") or {}), **(args if isinstance(args, dict) else {})}
        missing = [a for a in ("owner", "group", "mode") if a not in params]
        if missing:
            found.append(f"{where}: {task.get('name')!r} ({module}) does not set {', '.join(missing)}")
        elif not (isinstance(params["mode"], str) and (OCTAL_MODE.match(params["mode"]) or params["mode"].startswith(("u", "g", "o", "a")))):
            found.append(f'{where}: {task.get("name")!r} ({module}) mode {params["mode"]!r} is not a quoted octal such as "0644"')
    return found


def task_file_tasks(path: Path) -> Iterator[dict[str, Any]]:
    return tasks_of(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", ROLE_TASK_FILES + PLAYBOOKS, ids=lambda p: str(p.relative_to(PROJECT)))
def test_no_shell_and_command_takes_argv(path: Path) -> None:
    tasks = play_tasks(path) if path in PLAYBOOKS else task_file_tasks(path)
    assert command_findings(tasks, str(path.relative_to(PROJECT))) == []


@pytest.mark.parametrize("path", ROLE_TASK_FILES, ids=lambda p: str(p.relative_to(PROJECT)))
def test_role_tasks_that_write_files_set_owner_group_and_mode(path: Path) -> None:
    assert file_mode_findings(task_file_tasks(path), str(path.relative_to(PROJECT))) == []


BAD_TASKS = """
- name: Shell
  ansible.builtin.shell: echo hi
- name: Raw
  raw: echo hi
- block:
    - name: Command line
      ansible.builtin.command: "modprobe {{ item }}"
- name: Command cmd
  ansible.builtin.command:
    cmd: ipvsadm-save -n
- name: No mode
  ansible.builtin.copy: {dest: /etc/x, content: "", owner: root, group: root}
- name: Unquoted mode
  ansible.builtin.template: {src: a, dest: /etc/a, owner: root, group: root, mode: 0644}
- name: Good
  ansible.builtin.command:
    argv: [modprobe, ip_vs]
"""


def test_the_role_checks_find_bad_samples() -> None:
    commands = command_findings(tasks_of(yaml.safe_load(BAD_TASKS)), "sample")
    assert [f.split(":")[1].strip() for f in commands] == [
        "'Shell' runs shell",
        "'Raw' runs raw",
        "'Command line' gives command a command line, not argv",
        "'Command cmd' gives command a command line, not argv",
    ]
    modes = file_mode_findings(tasks_of(yaml.safe_load(BAD_TASKS)), "sample")
    assert modes == ["sample: 'No mode' (copy) does not set mode", "sample: 'Unquoted mode' (template) mode 420 is not a quoted octal such as \"0644\""]


# --- 4. secrets are no_log ---------------------------------------------------------------

SECRET = re.compile(r"(^|_)(pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credentials?|auth(_key)?)(_|$)", re.I)


def secret_findings(options: dict[str, Any], where: str) -> list[str]:
    found = []
    for name, spec in (options or {}).items():
        spec = spec or {}
        names = [name, *spec.get("aliases", [])]
        if any(SECRET.search(n) for n in names) and not spec.get("no_log"):
            found.append(f"{where}.{name} looks like a secret and has no no_log")
        found += secret_findings(spec.get("options"), f"{where}.{name}")
    return found


class Captured(Exception):
    pass


def argument_spec_of(module_name: str) -> dict[str, Any]:
    """The argument_spec a module gives AnsibleModule, caught before anything else runs."""
    if not any((Path(p) / "ansible_collections" / "lvs" / "dr").exists() for p in sys.path):
        root = Path(tempfile.mkdtemp(prefix="lvs-dr-security-"))
        (root / "ansible_collections" / "lvs").mkdir(parents=True)
        (root / "ansible_collections" / "lvs" / "dr").symlink_to(PROJECT)
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"ansible_collections.lvs.dr.plugins.modules.{module_name}")

    def capture(**kwargs: Any) -> None:
        raise Captured(kwargs)

    saved = module.AnsibleModule
    module.AnsibleModule = capture
    try:
        module.main()
    except Captured as caught:
        return caught.args[0]["argument_spec"]
    finally:
        module.AnsibleModule = saved
    pytest.fail(f"{module_name}.main() never created its AnsibleModule")


MODULES = sorted(p.stem for p in (PROJECT / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_module_secrets_are_no_log(module: str) -> None:
    spec = argument_spec_of(module)
    assert spec or module == "ipvs_info", f"{module}: no argument_spec caught"
    assert secret_findings(spec, module) == []


@pytest.mark.parametrize("role", sorted(p.parent.parent.name for p in PROJECT.glob("roles/*/meta/argument_specs.yml")))
def test_role_secrets_are_no_log(role: str) -> None:
    specs = yaml.safe_load((PROJECT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry, spec in specs.items():
        assert secret_findings(spec.get("options"), f"{role}:{entry}") == []


def test_the_secret_check_finds_bad_samples() -> None:
    spec = {
        "login_password": {"type": "str"},
        "api_key": {"type": "str", "no_log": True},
        "user": {"type": "dict", "options": {"token": {"type": "str"}}},
        "passthrough": {"type": "bool"},
        "cred": {"type": "str", "aliases": ["secret"]},
        "keepalive": {"type": "int"},
    }
    assert secret_findings(spec, "sample") == [
        "sample.login_password looks like a secret and has no no_log",
        "sample.user.token looks like a secret and has no no_log",
        "sample.cred looks like a secret and has no no_log",
    ]
