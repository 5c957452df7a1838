"""The layout shows the architecture: the job side and the shared domain never load the web side,
and the command-line client loads none of the service's code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from books.progress import ATTEMPTS, FALLBACK, NEXT_ATTEMPT_AT, ORIGIN_STRIKE, OWN_TROUBLE, PAUSED_SINCE, STORED_AT
from tests.processes import ROOT

PROJECT_PACKAGES = ("app", "books", "client", "worker")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (also inside functions)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reachable(package: str) -> set[str]:
    """The project's modules that importing any module of ``package`` loads, transitively."""
    pending = [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in (ROOT / package).glob("*.py")]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        pending += [module for module in imported_modules(path) if module.split(".")[0] in PROJECT_PACKAGES]
    return seen


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("worker", ("app", "client")),
        ("books", ("app", "worker", "client")),
        ("client", ("app", "books", "worker")),  # an HTTP client of the API and nothing else
    ],
)
def test_a_side_never_loads_what_it_does_not_run(package, forbidden):
    loaded = reachable(package)
    assert loaded, f"found no modules under {package}/"
    assert not {module for module in loaded if module.split(".")[0] in forbidden}


def test_the_worker_and_the_domain_never_load_flask():
    third_party = set()
    for module in reachable("worker") | reachable("books"):
        third_party |= imported_modules(module_file(module))
    assert not {
        module
        for module in third_party
        if module.split(".")[0] in ("flask", "werkzeug", "rq_dashboard", "prometheus_client")
    }


def test_the_worker_singletons_come_from_the_worker_context():
    """Settings, session and cookies have one home (worker/context.py), not the job module."""
    borrowed = {f"worker.tasks.{name}" for name in ("settings", "session", "cookies")}
    files = [path for folder in ("worker", "tests", "bench") for path in (ROOT / folder).glob("*.py")]
    assert files
    assert not {str(path.relative_to(ROOT)) for path in files if imported_modules(path) & borrowed}


RECOVERY = ("WorkerRecovery", "requeue_stranded", "settle_dead_worker", "release_paused", "scheduler_name")


def defined_names(path: Path) -> set[str]:
    """Every class and function a file defines, methods too."""
    tree = ast.parse(path.read_text(), str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef | ast.FunctionDef)}


def test_worker_recovery_lives_on_the_worker_side_only():
    """The queue's web-side contract (books/queue.py) holds no worker recovery: it is defined in
    worker/recovery.py alone, which the worker loads and the web side never does."""
    assert "worker.recovery" in reachable("worker")
    assert "worker.recovery" not in reachable("app")
    definers = {
        str(path.relative_to(ROOT))
        for folder in PROJECT_PACKAGES
        for path in (ROOT / folder).glob("*.py")
        if defined_names(path) & set(RECOVERY)
    }
    assert definers == {"worker/recovery.py"}
    assert set(RECOVERY) <= defined_names(ROOT / "worker" / "recovery.py")


# A book's status hash has one owner: the key and the fields only it has are spelled there alone
# (fields it shares with the origin's hash, ``state`` and ``reason``, cannot be told apart by
# grep). The API's answer has fields of the same names: a quoted name counts where a line also
# writes or reads a hash, or the status key is spelled.
PROGRESS_OWNER = ROOT / "books" / "progress.py"
PROGRESS_FIELDS = ATTEMPTS, STORED_AT, FALLBACK, NEXT_ATTEMPT_AT, PAUSED_SINCE, ORIGIN_STRIKE, OWN_TROUBLE
SPELLED_FIELD = re.compile("['\"]({})['\"]".format("|".join(PROGRESS_FIELDS)))
HASH_COMMAND = re.compile(r"\bh(set|get|mget|getall|incrby|setnx|del|exists)\b|mapping=", re.IGNORECASE)


def progress_spellings(source: str) -> list[str]:
    """The lines of ``source`` that spell the status key, or one of its fields in a hash command."""
    return [
        line.strip()
        for line in source.splitlines()
        if ":status:" in line or (SPELLED_FIELD.search(line) and HASH_COMMAND.search(line))
    ]


def test_only_the_owner_of_a_books_progress_spells_its_key_and_fields():
    assert progress_spellings(PROGRESS_OWNER.read_text()), "the owner spells them"
    spelled = {
        str(path.relative_to(ROOT)): lines
        for package in ("app", "books", "worker")
        for path in sorted((ROOT / package).glob("*.py"))
        if path != PROGRESS_OWNER and (lines := progress_spellings(path.read_text()))
    }
    assert spelled == {}


def test_the_progress_grep_finds_what_it_looks_for():
    assert progress_spellings("""redis.call('HINCRBY', status_key, 'attempts', -1)""")
    assert progress_spellings("""pipe.hdel(key, "paused_since", "next_attempt_at")""")
    assert progress_spellings("""return f"{self.prefix}:status:{book_id}\"""")
    assert not progress_spellings("""body["attempts"] = state.attempts""")
