"""The product runs where its users are: most Roo Code users are on Windows, where POSIX-only
modules such as `fcntl` do not exist. Every module of the package must import on both."""

import ast
from pathlib import Path

import indexer_pipeline

# Modules that exist on one family of operating systems only.
POSIX_ONLY = {"fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog", "posix"}
WINDOWS_ONLY = {"msvcrt", "winreg", "winsound", "_winapi", "nt"}
PACKAGE = Path(indexer_pipeline.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_an_os_specific_module():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imports(path) & (POSIX_ONLY | WINDOWS_ONLY))
        for path in PACKAGE.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_store_lock_names_its_holder_from_a_file_of_its_own(tmp_path):
    """Windows forbids reading a locked file, so the holder's name must not live in the lock file."""
    from indexer_pipeline.vectorstore.edge import EdgeStore

    folder = tmp_path / "qdrant_edge" / "documents"
    with EdgeStore(folder):
        holder = folder.with_name("documents.lock.holder").read_text(encoding="utf-8")
        assert holder.startswith(f"{__import__('os').getpid()} (")
        assert folder.with_name("documents.lock").read_text(encoding="utf-8") == ""
