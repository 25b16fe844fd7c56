"""Reading units into documents (readers.py): Roo Code tasks, document trees, and bad input."""

from __future__ import annotations

import builtins
import codecs
import json
import os
from pathlib import Path

import pytest

from indexer_pipeline import readers
from indexer_pipeline.config import SAMPLE_CORPUS
from indexer_pipeline.corpus import discover_units, find_unit
from indexer_pipeline.pipeline import Indexer
from indexer_pipeline.readers import read_unit

TASK = "6b1f0d2e-93a4-4c5b-8e7f-1a2b3c4d5e6f"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
ENV = (
    "<environment_details>\n# VSCode Visible Files\napp.py\n\n# Current Mode\n<slug>debug</slug>\n"
    "<name>Debug</name>\n\n# Current Workspace Directory (/home/u/my proj) Files\napp.py\n"
    "</environment_details>"
)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def task_folder(root: Path, **files) -> Path:
    """A task folder with the given files; values that are not str/bytes are written as JSON."""
    folder = root / "tasks" / TASK
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        write(folder / f"{name}.json", value if isinstance(value, str | bytes) else json.dumps(value))
    return folder


def read(root: Path, key: str):
    unit = find_unit([root], key)
    assert unit is not None, key
    return read_unit(unit)


def read_task(root: Path):
    return read(root, f"task-{TASK}")


def reasons(content) -> dict[str, str]:
    return {r.path: r.reason for r in content.rejected}


def texts(content) -> list[str]:
    return [d.text for d in content.documents]


FIRST_USER = {
    "role": "user",
    "ts": 1700000000000,
    "content": [
        {"type": "text", "text": "<task>\nFix the   login\nbug\n</task>"},
        IMAGE,
        {"type": "text", "text": ENV},
    ],
}


# -- tasks: message shapes ---------------------------------------------------------------------


def test_every_message_shape_becomes_text(tmp_path):
    history = [
        FIRST_USER,
        {"role": "assistant", "ts": 1700000001000, "content": "A plain string reply."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading it."},
                {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "app.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "def login(): ..."},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "shot:"}, IMAGE],
                },
                {"type": "text", "text": ENV},
            ],
        },
        {"role": "user", "content": [IMAGE]},  # only an image: not a document
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hidden"}, {"type": "text", "text": "Done."}],
        },
    ]
    task_folder(tmp_path, api_conversation_history=history)

    content = read_task(tmp_path)

    assert content.rejected == []
    docs = {d.doc_id.rsplit(":", 1)[1]: d for d in content.documents}
    assert sorted(docs) == ["m00000", "m00001", "m00002", "m00003", "m00005"]
    assert docs["m00000"].text == "<task>\nFix the   login\nbug\n</task>\n\n[image]"
    assert docs["m00001"].text == "A plain string reply."
    assert docs["m00002"].text == 'Reading it.\n\ntool_use read_file: {"path": "app.py"}'
    assert docs["m00003"].text == "tool_result: def login(): ...\n\ntool_result: shot:\n\n[image]"
    assert docs["m00005"].text == "Done."
    assert docs["m00000"].doc_id == f"task-{TASK}:m00000"
    assert docs["m00000"].path == f"tasks/{TASK}/api_conversation_history.json"
    assert docs["m00001"].metadata["timestamp"] == 1700000001000
    assert "timestamp" not in docs["m00002"].metadata
    assert [d.metadata["role"] for d in content.documents] == [
        "user",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    assert [d.metadata["message_index"] for d in content.documents] == [0, 1, 2, 3, 5]


def test_images_and_environment_details_are_never_indexed(tmp_path):
    ui = [
        {
            "ts": 1,
            "type": "say",
            "say": "text",
            "text": "see screenshot",
            "images": [f"data:image/png;base64,{PNG}"],
        }
    ]
    task_folder(tmp_path, api_conversation_history=[FIRST_USER], ui_messages=ui)
    write(tmp_path / "docs" / "a.md", "# A\ntext")

    for unit in discover_units([tmp_path]):
        for doc in read_unit(unit).documents:
            assert PNG[:24] not in doc.text
            assert "environment_details" not in doc.text


def test_ui_messages_are_not_indexed_when_the_api_history_exists(tmp_path):
    ui = [
        {"ts": 1, "type": "say", "say": "text", "text": "Fix the login bug"},
        {"ts": 2, "type": "say", "say": "text", "text": "UI-ONLY COPY of the reply"},
    ]
    history = [FIRST_USER, {"role": "assistant", "content": "The reply."}]
    task_folder(tmp_path, api_conversation_history=history, ui_messages=ui)

    content = read_task(tmp_path)

    assert len(content.documents) == 2
    assert all(d.path.endswith("api_conversation_history.json") for d in content.documents)
    assert not any("UI-ONLY" in t for t in texts(content))


UI_ONLY = [
    {
        "ts": 10,
        "type": "say",
        "say": "text",
        "text": "Why does memory grow?",
        "images": [f"data:image/png;base64,{PNG}"],
    },
    {"ts": 11, "type": "say", "say": "api_req_started", "text": '{"cost": 0.01}'},
    {"ts": 12, "type": "say", "say": "text", "text": "Take two heap snapsh", "partial": True},
    {"ts": 13, "type": "say", "say": "text", "text": "Take two heap snapshots.", "partial": False},
    {
        "ts": 14,
        "type": "ask",
        "ask": "followup",
        "text": json.dumps({"question": "Which grew?", "suggest": [{"answer": "Closures"}, "Strings"]}),
    },
    {"ts": 15, "type": "say", "say": "user_feedback", "text": "Closures, via the event bus."},
    {"ts": 16, "type": "ask", "ask": "command", "text": "grep -rn bus.on src/"},
    {"ts": 17, "type": "say", "say": "command_output", "text": "src/a.js:3: bus.on(...)"},
    {"ts": 18, "type": "say", "say": "completion_result", "text": "Remove the listener on close."},
    {"ts": 19, "type": "ask", "ask": "completion_result", "text": ""},
]


def test_ui_messages_make_the_conversation_when_the_api_history_is_missing(tmp_path):
    task_folder(tmp_path, ui_messages=UI_ONLY)

    content = read_task(tmp_path)

    assert content.rejected == []
    assert [(d.metadata["message_index"], d.metadata["role"], d.text) for d in content.documents] == [
        (0, "user", "Why does memory grow?"),
        (3, "assistant", "Take two heap snapshots."),
        (4, "assistant", "Which grew?\n- Closures\n- Strings"),
        (5, "user", "Closures, via the event bus."),
        (8, "assistant", "Remove the listener on close."),
    ]
    assert content.documents[0].path == f"tasks/{TASK}/ui_messages.json"
    assert content.documents[0].metadata["title"] == "Why does memory grow?"
    assert content.documents[0].metadata["timestamp"] == 10


def test_ui_messages_are_used_when_the_api_history_is_unreadable(tmp_path):
    task_folder(tmp_path, api_conversation_history='[{"role": "user",\n  "content": ]', ui_messages=UI_ONLY)

    content = read_task(tmp_path)

    assert reasons(content) == {
        f"tasks/{TASK}/api_conversation_history.json": "malformed JSON at line 2 column 14: Expecting value"
    }
    assert len(content.documents) == 5
    assert content.seen == 6


def test_claude_messages_is_read_when_the_api_history_is_missing(tmp_path):
    old = [
        {"role": "user", "content": "<task>\nWrite a regex\n</task>"},
        {"role": "assistant", "content": "r'\\d+'"},
    ]
    task_folder(tmp_path, claude_messages=old, ui_messages=UI_ONLY)

    content = read_task(tmp_path)

    assert texts(content) == ["<task>\nWrite a regex\n</task>", "r'\\d+'"]
    assert content.documents[0].path.endswith("claude_messages.json")
    assert content.documents[0].metadata["title"] == "Write a regex"


def test_history_item_gives_the_task_metadata(tmp_path):
    history_item = {
        "id": TASK, "parentTaskId": "parent-1", "rootTaskId": "root-1", "number": 7, "ts": 1,
        "task": "Fix the login bug (from history)", "workspace": "/srv/app", "mode": "code",
        "tokensIn": 10, "tokensOut": 20, "totalCost": 0.1,
    }  # fmt: skip
    files_in_context = {"files_in_context": [{"path": "app.py"}, {"path": "auth.py"}]}
    task_folder(
        tmp_path,
        api_conversation_history=[FIRST_USER],
        history_item=history_item,
        task_metadata=files_in_context,
    )

    (doc,) = read_task(tmp_path).documents

    assert doc.metadata == {
        "kind": "task",
        "source_root": str(tmp_path),
        "task_id": TASK,
        "parent_task_id": "parent-1",
        "root_task_id": "root-1",
        "workspace": "/srv/app",
        "title": "Fix the login bug (from history)",
        "mode": "code",
        "files_in_context": 2,
        "role": "user",
        "message_index": 0,
        "timestamp": 1700000000000,
        "tool_names": [],
        "has_errors": False,
    }


def test_without_history_item_the_metadata_comes_from_the_conversation(tmp_path):
    long_task = {
        "role": "user",
        "content": [
            {"type": "text", "text": "<task>\n" + "word " * 100 + "</task>"},
            {"type": "text", "text": ENV},
        ],
    }
    task_folder(tmp_path, api_conversation_history=[{"role": "assistant", "content": "Hi"}, long_task])

    docs = read_task(tmp_path).documents
    meta = docs[0].metadata

    assert meta["workspace"] == "/home/u/my proj"
    assert meta["mode"] == "debug"
    assert meta["title"].startswith("word word") and meta["title"].endswith("…")
    assert len(meta["title"]) == readers.TITLE_CHARS
    assert "parent_task_id" not in meta and "root_task_id" not in meta  # None values are omitted


def test_a_history_item_without_workspace_is_completed_from_the_conversation(tmp_path):
    task_folder(
        tmp_path, api_conversation_history=[FIRST_USER], history_item={"id": TASK, "task": "Login bug"}
    )

    (doc,) = read_task(tmp_path).documents

    assert (doc.metadata["title"], doc.metadata["workspace"], doc.metadata["mode"]) == (
        "Login bug", "/home/u/my proj", "debug"
    )  # fmt: skip


# -- tasks: the tools a message calls or answers, and whether one failed ---------------------------

READ_DB = "[read_file for 'src/lib/db.ts'] Result:\n" + "\n".join(
    [
        "1 | import { Pool } from 'pg';",
        "2 | export async function query(sql: string) {",
        "3 |   try { return await pool.query(sql); }",
        "4 |   catch (error) { console.error('Error running query', error); throw error; }",
        "5 | }",
    ]
)


def by_index(content) -> dict[int, dict]:
    return {d.metadata["message_index"]: d.metadata for d in content.documents}


def test_anthropic_tool_blocks_name_their_tools_and_is_error_marks_a_failure(tmp_path):
    history = [
        FIRST_USER,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me run the tests and read the module."},
                {
                    "type": "tool_use",
                    "id": "call-1",
                    "name": "execute_command",
                    "input": {"command": "pytest"},
                },
                {"type": "tool_use", "id": "call-2", "name": "read_file", "input": {"path": "db.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call-1",
                    "is_error": True,
                    "content": "exit status 2",
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call-2",
                    "content": [{"type": "text", "text": READ_DB}],
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call-2", "content": "except ValueError as error:"}
            ],
        },
    ]
    task_folder(tmp_path, api_conversation_history=history)

    meta = by_index(read_task(tmp_path))

    assert (meta[0]["tool_names"], meta[0]["has_errors"]) == ([], False)
    assert (meta[1]["tool_names"], meta[1]["has_errors"]) == (["execute_command", "read_file"], False)
    assert (meta[2]["tool_names"], meta[2]["has_errors"]) == (["execute_command", "read_file"], True)
    assert (meta[3]["tool_names"], meta[3]["has_errors"]) == (["read_file"], False)  # code, not a failure


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (READ_DB, False),  # `catch (error)`, console.error and "Error running" inside a file read
        (
            "[execute_command for 'npm install'] Result:\nCommand failed with exit code 1.\nOutput:\nnpm error code ERESOLVE",
            True,
        ),
        (
            "[execute_command for 'tsc'] Result:\nCommand executed successfully (exit code 0).\nOutput:\nFound 0 errors.",
            False,
        ),
        (
            "[execute_command for 'python manage.py migrate'] Result:\nCommand executed in terminal within working "
            "directory '/srv/app'. Exit code: 0\nOutput:\nTraceback (most recent call last):\n  File \"manage.py\", "
            "line 22\nKeyError: 'DATABASE_URL'",
            True,
        ),
        (
            "[execute_command for 'node check.js'] Result:\nCommand executed.\nOutput:\nError: read ECONNRESET",
            True,
        ),
        (
            "[execute_command for 'make'] Result:\nCommand executed in terminal within working directory '/srv'. "
            "Command execution was not successful, inspect the cause and adjust as needed.\nExit code: 2\nOutput:\n",
            True,
        ),
        (
            "[apply_diff for 'app.py'] Result:\nThe tool execution failed with the following error:\n<error>\n"
            "No sufficiently similar match found at line 12\n</error>",
            True,
        ),
        ("[read_file for 'notes.md'] Result:\nerror: lines in a file read are data, not a failure", False),
        ("[write_to_file for 'app.py'] Result:\nThe content was successfully saved to app.py.", False),
    ],
    ids=[
        "file-read-with-error-words",
        "command-failed-exit-1",
        "command-exit-0-found-0-errors",
        "traceback-in-command-output",
        "error-line-in-command-output",
        "roo-exit-code-2",
        "tool-execution-failed",
        "error-line-in-a-file-read",
        "write-succeeded",
    ],
)
def test_cline_and_roo_text_results_name_their_tool_and_report_failures_precisely(tmp_path, result, failed):
    history = [
        FIRST_USER,
        {"role": "user", "content": [{"type": "text", "text": result}, {"type": "text", "text": ENV}]},
    ]
    task_folder(tmp_path, api_conversation_history=history)

    meta = by_index(read_task(tmp_path))[1]

    assert meta["tool_names"] == [result[1 : result.index(" ")]]
    assert meta["has_errors"] is failed


def test_roo_xml_tool_calls_are_named_but_their_parameters_are_not(tmp_path):
    reply = (
        "<thinking>The config is read at import time.</thinking>\n"
        "<read_file>\n<args>\n<file>\n<path>settings.py</path>\n<line_range>1-40</line_range>\n</file>\n"
        "</args>\n</read_file>\n\n<apply_diff>\n<path>app.py</path>\n<diff>\n<<<<<<< SEARCH\n:start_line:3\n"
        "=======\nx = 1\n>>>>>>> REPLACE\n</diff>\n</apply_diff>"
    )
    history = [FIRST_USER, {"role": "assistant", "content": [{"type": "text", "text": reply}]}]
    task_folder(tmp_path, api_conversation_history=history)

    assert by_index(read_task(tmp_path))[1]["tool_names"] == ["read_file", "apply_diff"]


def test_ui_messages_tool_steps_and_errors_belong_to_the_message_before(tmp_path):
    ui = [
        {"ts": 1, "type": "say", "say": "text", "text": "Why does the build fail?"},
        {"ts": 2, "type": "say", "say": "text", "text": "Reading the build script first."},
        {"ts": 3, "type": "ask", "ask": "tool", "text": json.dumps({"tool": "readFile", "path": "build.sh"})},
        {"ts": 4, "type": "ask", "ask": "command", "text": "./build.sh"},
        {
            "ts": 5,
            "type": "say",
            "say": "command_output",
            "text": "Traceback (most recent call last):\nOSError",
        },
        {"ts": 6, "type": "say", "say": "text", "text": "A missing folder; creating it."},
        {"ts": 7, "type": "ask", "ask": "tool", "text": json.dumps({"tool": "editedExistingFile"})},
        {"ts": 8, "type": "say", "say": "text", "text": "Fixed."},
    ]
    task_folder(tmp_path, ui_messages=ui)

    meta = by_index(read_task(tmp_path))

    assert (meta[0]["tool_names"], meta[0]["has_errors"]) == ([], False)
    assert (meta[1]["tool_names"], meta[1]["has_errors"]) == (["read_file", "execute_command"], True)
    assert (meta[5]["tool_names"], meta[5]["has_errors"]) == (["edited_existing_file"], False)
    assert (meta[7]["tool_names"], meta[7]["has_errors"]) == ([], False)


def test_every_document_names_its_corpus_root_as_configured_and_redacted(tmp_path, monkeypatch):
    from .conftest import PLANTED_SECRET

    root = tmp_path / f"export-{PLANTED_SECRET}"
    task_folder(root, api_conversation_history=[FIRST_USER])
    write(root / "notes.md", "# Notes")
    monkeypatch.chdir(tmp_path)

    units = discover_units([Path(root.name)])  # configured relative to the working directory
    roots = {d.metadata["source_root"] for u in units for d in read_unit(u).documents}

    assert len(units) == 2
    assert roots == {str(tmp_path / "export-[REDACTED:openai_key]")}


# -- tasks: bad input --------------------------------------------------------------------------


def test_bad_messages_are_rejected_one_by_one(tmp_path):
    history = [
        FIRST_USER,
        "not a message",
        {"role": "assistant", "content": 42},
        {"role": "assistant", "content": "ok"},
    ]
    task_folder(tmp_path, api_conversation_history=history, history_item="{oops", task_metadata=[1, 2])

    content = read_task(tmp_path)

    assert sorted(r.reason for r in content.rejected) == [
        "expected an object at the top level, found a list",
        "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes",
        "message 1: expected an object, found a string",
        "message 2: content is a number, not text or a list of blocks",
    ]
    assert [d.metadata["message_index"] for d in content.documents] == [0, 3]
    assert content.documents[0].metadata["workspace"] == "/home/u/my proj"  # fallback still works


def test_a_task_file_linked_from_outside_the_corpus_is_rejected(tmp_path):
    root = tmp_path / "corpus"
    outside = write(tmp_path / "elsewhere.json", json.dumps([FIRST_USER]))
    folder = task_folder(root, ui_messages=UI_ONLY)
    (folder / "api_conversation_history.json").symlink_to(outside)

    content = read_task(root)

    (reason,) = reasons(content).values()
    assert reason.startswith("symlink leaves the corpus (points to ")
    assert len(content.documents) == 5  # read from ui_messages instead


# -- document trees ----------------------------------------------------------------------------


def test_every_tree_format(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "guide.md", "Intro line\n\n## Deploying  ##\n\nRun make deploy.\n")
    write(docs / "notes.txt", "plain notes")
    write(docs / "glossary.rst", "=====\nTerms\n=====\n\nLane\n    A route.\n")
    write(
        docs / "page.html",
        "<html><head><title>On  call</title><style>p{color:red}</style><script>var x = 1;</script></head>"
        "<body><h1>Paging</h1><p>Ack within\n  5 minutes &amp; escalate.</p><table><tr><td>SEV1</td><td>all down</td></tr></table></body></html>",
    )
    write(
        docs / "config.json",
        json.dumps({"name": "svc", "limits": {"rpm": 600}, "tags": ["a", "b"], "on": True}),
    )
    write(docs / "events.jsonl", '{"id": 1, "msg": "one"}\n\n{"id": 2, "msg": "two"}\n')
    write(docs / "table.csv", "code,name,notes\nA1,Alpha,\nB2,Beta,fast\n")
    write(docs / "script.py", "print('ignored')")
    write(docs / ".hidden.md", "ignored")

    content = read(tmp_path, "doc-docs")

    assert content.rejected == []
    by_id = {d.doc_id.split(":", 1)[1]: d for d in content.documents}
    assert sorted(by_id) == [
        "docs/config.json", "docs/events.jsonl#L1", "docs/events.jsonl#L3", "docs/glossary.rst",
        "docs/guide.md", "docs/notes.txt", "docs/page.html", "docs/table.csv#R1", "docs/table.csv#R2",
    ]  # fmt: skip
    assert by_id["docs/guide.md"].text == "Intro line\n\n## Deploying  ##\n\nRun make deploy.\n"
    assert by_id["docs/guide.md"].metadata == {
        "kind": "tree",
        "source_root": str(tmp_path),
        "format": "md",
        "title": "Deploying",
    }
    assert by_id["docs/notes.txt"].metadata["title"] == "notes.txt"
    assert by_id["docs/glossary.rst"].metadata["title"] == "Terms"
    html = by_id["docs/page.html"]
    assert html.text == "Paging\nAck within 5 minutes & escalate.\nSEV1 all down"
    assert html.metadata["title"] == "On call"
    assert by_id["docs/config.json"].text == "name: svc\nlimits.rpm: 600\ntags[0]: a\ntags[1]: b\non: true"
    assert by_id["docs/events.jsonl#L3"].text == "id: 2\nmsg: two"
    assert by_id["docs/events.jsonl#L3"].metadata["line"] == 3
    assert by_id["docs/table.csv#R1"].text == "code: A1\nname: Alpha"
    assert by_id["docs/table.csv#R2"].metadata == {
        "kind": "tree",
        "source_root": str(tmp_path),
        "format": "csv",
        "title": "table.csv",
        "row": 2,
    }
    assert all(d.path == d.doc_id.split(":", 1)[1].split("#")[0] for d in content.documents)


def test_doc_ids_are_stable_across_reads(tmp_path):
    write(tmp_path / "docs" / "a.md", "# A")
    write(tmp_path / "docs" / "t.csv", "a\n1\n2\n")

    first, second = read(tmp_path, "doc-docs"), read(tmp_path, "doc-docs")

    assert [(d.doc_id, d.sha256) for d in first.documents] == [(d.doc_id, d.sha256) for d in second.documents]


def test_a_single_top_level_file_is_a_unit(tmp_path):
    write(tmp_path / "FAQ.md", "# FAQ\nQ?")

    (doc,) = read(tmp_path, "doc-FAQ.md").documents

    assert (doc.doc_id, doc.path, doc.metadata["title"]) == ("doc-FAQ.md:FAQ.md", "FAQ.md", "FAQ")


# -- document trees: bad input -----------------------------------------------------------------


def read_docs_with(tmp_path: Path, name: str, data: str | bytes):
    """Read a `docs` unit holding one good page and one file under test."""
    write(tmp_path / "docs" / "good.md", "# Good\nstill indexed")
    write(tmp_path / "docs" / name, data)
    content = read(tmp_path, "doc-docs")
    assert [d.path for d in content.documents if d.path == "docs/good.md"] == ["docs/good.md"]
    return content


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("bad.json", '{\n  "a": 1,\n    ]\n}', "malformed JSON at line 3 column 5: Expecting property name enclosed in double quotes"),
        ("noise.md", bytes(range(1, 256)) * 4, "binary file (not UTF-8 and no other encoding fits: byte 0x80 at offset 127)"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file (NUL byte at offset 8)"),
        ("empty.md", b"", "empty file"),
        ("blank.txt", " \n\t\n", "empty file (only whitespace)"),
        ("broken.csv", 'a,b\n1,2\n3,4,5,6\n', "CSV could not be parsed: Error tokenizing data. C error: Expected 2 fields in line 3, saw 4"),
        ("head-only.csv", "a,b\n", "no text to index in this CSV file"),
        ("scripts.html", "<script>alert(1)</script>", "no text to index in this HTML file"),
        ("nothing.json", "{}", "no text to index in this JSON file"),
    ],
)  # fmt: skip
def test_bad_files_are_rejected_with_a_reason(tmp_path, name, data, reason):
    content = read_docs_with(tmp_path, name, data)

    assert reasons(content) == {f"docs/{name}": reason}
    assert content.seen == 2


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("café ok", "latin-1"),
        ("“Meeting notes” – café, naïve résumé; costs €12.\nNext: déjà vu…\n", "cp1252"),
        ("Grüße aus München, schöne Äpfel.", "cp1252"),
        ("Привет, это заметки о встрече.", "cp1251"),
    ],
)
def test_legacy_encoded_text_is_decoded_not_rejected(tmp_path, text, codec):
    content = read_docs_with(tmp_path, "notes.txt", text.encode(codec))

    assert content.rejected == []
    assert text in texts(content)


def test_a_malformed_jsonl_line_is_rejected_alone(tmp_path):
    content = read_docs_with(tmp_path, "log.jsonl", '{"a": 1}\n{"a": \n{"a": 3}\n')

    assert reasons(content) == {"docs/log.jsonl": "line 2: malformed JSON at column 7: Expecting value"}
    assert [d.doc_id.rsplit("#", 1)[1] for d in content.documents if "#" in d.doc_id] == ["L1", "L3"]


@pytest.mark.parametrize("bom", [codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
def test_a_byte_order_mark_is_accepted(tmp_path, bom):
    codec = "utf-8" if bom == codecs.BOM_UTF8 else "utf-16-le"
    write(tmp_path / "docs" / "bom.json", bom + '{"title": "Grüße"}'.encode(codec))
    write(tmp_path / "docs" / "bom.md", bom + "# Grüße\n".encode(codec))

    content = read(tmp_path, "doc-docs")

    assert content.rejected == []
    assert texts(content) == ["title: Grüße", "# Grüße\n"]


def test_an_empty_folder_is_a_unit_without_documents(tmp_path):
    (tmp_path / "empty").mkdir()

    content = read(tmp_path, "doc-empty")

    assert (content.documents, content.rejected) == ([], [])


def test_symlinks_that_leave_the_corpus_or_loop_are_rejected(tmp_path):
    root = tmp_path / "corpus"
    write(tmp_path / "outside" / "secret.md", "outside")
    write(root / "docs" / "good.md", "# Good")
    (root / "docs" / "escape.md").symlink_to(tmp_path / "outside" / "secret.md")
    (root / "docs" / "escape-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "docs" / "again").symlink_to(root / "docs", target_is_directory=True)
    (root / "docs" / "a.md").symlink_to("b.md")
    (root / "docs" / "b.md").symlink_to("a.md")
    (root / "docs" / "gone.md").symlink_to("missing.md")
    (root / "docs" / "alias.md").symlink_to("good.md")  # indexed once, under its real name

    content = read(root, "doc-docs")

    found = reasons(content)
    assert found["docs/escape.md"] == f"symlink leaves the corpus (points to {tmp_path}/outside/secret.md)"
    assert found["docs/escape-dir"] == f"symlink leaves the corpus (points to {tmp_path}/outside)"
    assert found["docs/again"] == "symlink loop (points to a folder that contains it)"
    assert found["docs/a.md"] == found["docs/b.md"] == "symlink loop"
    assert found["docs/gone.md"] == "broken symlink: no such file or directory"
    assert len(found) == 6
    assert sorted(d.path for d in content.documents) == ["docs/good.md"]
    assert all("outside" not in d.text for d in content.documents)


def test_an_unreadable_file_is_rejected(tmp_path, monkeypatch):
    """chmod 000 stops reads for ordinary users; root reads anyway, so there `open` is made to fail
    for that one path as the kernel would."""
    locked = write(tmp_path / "docs" / "locked.md", "# Locked")
    locked.chmod(0)
    try:
        locked.read_bytes()
    except PermissionError:
        pass
    else:

        def denying_open(path, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return builtins.open(path, *args, **kwargs)

        monkeypatch.setattr(readers, "open", denying_open, raising=False)

    try:
        content = read_docs_with(tmp_path, "ok.txt", "fine")
    finally:
        locked.chmod(0o644)

    assert reasons(content) == {"docs/locked.md": "permission denied"}
    assert len(content.documents) == 2


def test_a_file_over_the_size_limit_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1_000_000)

    content = read_docs_with(tmp_path, "huge.txt", "x" * 1_500_000)

    assert reasons(content) == {"docs/huge.txt": "file too large (1.5 MB; the limit is 1 MB)"}


def test_file_names_with_newlines_and_unicode_read(tmp_path):
    write(tmp_path / "docs" / "line\nbreak.md", "# Newline\nok")
    write(tmp_path / "docs" / "日本語 メモ.md", "# Unicode\nok")
    write(tmp_path / "Ünïcödé notes.md", "# Top\nok")

    docs = [d for u in discover_units([tmp_path]) for d in read_unit(u).documents]

    assert sorted(d.path for d in docs) == ["docs/line\nbreak.md", "docs/日本語 メモ.md", "Ünïcödé notes.md"]
    assert len({d.doc_id for d in docs}) == 3


def test_a_file_name_that_is_not_utf8_still_reads(tmp_path):
    name = os.fsdecode(b"caf\xe9.md")
    write(tmp_path / "docs" / name, "# Latin-1 name")

    (doc,) = read(tmp_path, "doc-docs").documents

    assert doc.path == "docs/caf\ufffd.md"
    doc.path.encode("utf-8")  # safe to store and to send


def test_names_that_display_alike_keep_distinct_doc_ids(tmp_path):
    for raw in (b"caf\xe9.md", b"caf\xe8.md"):  # both display as "caf\ufffd.md"
        write(tmp_path / "docs" / os.fsdecode(raw), "# same display name")
    write(tmp_path / "docs" / "caf\ufffd.md", "# a real U+FFFD in a UTF-8 name")

    docs = read(tmp_path, "doc-docs").documents

    assert [d.path for d in docs] == ["docs/caf\ufffd.md"] * 3
    assert len({d.doc_id for d in docs}) == 3
    assert "doc-docs:docs/caf\ufffd.md" in {d.doc_id for d in docs}  # an exact name keeps a plain id
    for d in docs:
        d.doc_id.encode("utf-8")


def test_names_that_display_alike_go_through_the_read_stage(corpus_env):
    docs = corpus_env.corpus_dirs[0] / "docs"
    for raw in (b"caf\xe9.md", b"caf\xe8.md"):  # crashed the step: UNIQUE constraint on point ids
        write(docs / os.fsdecode(raw), f"# {raw!r}")

    with Indexer(corpus_env) as ix:
        report = ix.read_units(ix.resolve(["doc-docs"])[0])
        paths = [c.payload["path"] for c in ix.catalog.chunks("doc-docs")]

    assert report.units == 1
    assert paths.count("docs/caf\ufffd.md") == 2


def test_links_inside_the_corpus_index_each_file_once(tmp_path):
    write(tmp_path / "docs" / "a" / "guide.md", "# Guide\nthe guide text")
    write(tmp_path / "notes" / "n.md", "# Note\nthe note text")
    write(tmp_path / ".shared" / "s.md", "# Shared\nthe shared text")
    (tmp_path / "docs" / "notes-link").symlink_to(
        tmp_path / "notes", target_is_directory=True
    )  # another unit
    (tmp_path / "docs" / "a-again").symlink_to(tmp_path / "docs" / "a", target_is_directory=True)  # own unit
    (tmp_path / "docs" / "shared").symlink_to(tmp_path / ".shared", target_is_directory=True)  # no unit's
    (tmp_path / "notes-too").symlink_to(tmp_path / "notes", target_is_directory=True)  # a unit, again

    docs = [d for u in discover_units([tmp_path]) for d in read_unit(u).documents]

    assert sorted((d.unit, d.path) for d in docs) == [
        ("doc-docs", "docs/a/guide.md"),
        ("doc-docs", "docs/shared/s.md"),
        ("doc-notes", "notes/n.md"),
    ]


# -- the shipped sample corpus -----------------------------------------------------------------

SAMPLE_SECRET = "OPENAI_API_KEY=sk-proj-FAKEfakeFAKE0000EXAMPLEexampleNOTaREALkey0123456789abcdEF"


def test_the_sample_corpus_reads_cleanly():
    units = discover_units([SAMPLE_CORPUS])
    contents = {u.key: read_unit(u) for u in units}

    tasks = [u for u in units if u.kind == "task"]
    assert len(tasks) == 12
    assert sorted(u.key for u in units if u.kind == "tree") == [
        "doc-CHANGELOG.md", "doc-Design-notes-rate-caching.md-120ba1c9", "doc-docs", "doc-handbook",
    ]  # fmt: skip
    assert {k: c.rejected for k, c in contents.items() if c.rejected} == {}
    for content in contents.values():
        assert content.documents, content.unit.key
        for doc in content.documents:
            assert PNG[:24] not in doc.text
    counts = [len(contents[u.key].documents) for u in tasks]
    assert min(counts) >= 4 and max(counts) <= 12
    subtask = contents["task-9a90216e-6fee-47d4-a944-b0bca78373de"].documents[0].metadata
    assert subtask["parent_task_id"] == "94d71ef4-c8d8-4f7a-bb03-23c506a57e4f"


def test_the_sample_corpus_plants_one_secret_and_the_reader_redacts_it():
    content = read(SAMPLE_CORPUS, "task-5528dbd6-d7dc-4d52-884c-abe5a78e2c31")
    raw = SAMPLE_CORPUS / "tasks" / "5528dbd6-d7dc-4d52-884c-abe5a78e2c31" / "api_conversation_history.json"

    holders = [d.doc_id for d in content.documents if "OPENAI_API_KEY=[REDACTED:openai_key]" in d.text]

    assert SAMPLE_SECRET in raw.read_text(encoding="utf-8")
    assert holders == ["task-5528dbd6-d7dc-4d52-884c-abe5a78e2c31:m00003"]
    assert content.redactions >= 1


def test_reading_a_unit_lists_its_files_once(corpus_env, monkeypatch):
    """Issue 12, item 4: the read stage walks each unit's folders once, for its fingerprint and its
    documents alike (the old code walked them twice), and the fingerprint it records is the one the
    sensor computes from a fresh listing."""
    from indexer_pipeline import corpus
    from indexer_pipeline.corpus import unit_fingerprint

    listed: list[str] = []
    real_scandir = corpus.os.scandir

    def counting_scandir(path):
        listed.append(os.fspath(path))
        return real_scandir(path)

    with Indexer(corpus_env) as ix:
        units = ix.units()
        monkeypatch.setattr(corpus.os, "scandir", counting_scandir)
        report = ix.read_units(units)
        monkeypatch.undo()
        folders = [str(u.path) for u in units if u.path.is_dir()]
        assert report.units == len(units) and folders
        assert sorted(p for p in listed if p in folders) == sorted(folders)  # each unit folder once
        assert {u.key: ix.catalog.unit(u.key).fingerprint for u in units} == {
            u.key: unit_fingerprint(u) for u in units
        }
