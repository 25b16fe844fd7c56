"""Turn a source unit into documents: Roo Code / Cline task conversations, and document trees.

Bad input never raises. Each problem becomes a `Rejection` whose reason a person can act on
("malformed JSON at line 3 column 5: ...", "binary file (NUL byte at offset 12)", "permission denied"),
and the rest of the unit still reads.

Tasks: one document per conversation message, from `api_conversation_history.json`, else the older
`claude_messages.json` (same format), else `ui_messages.json` (which repeats the conversation, so it is
read only when the others are missing, unreadable or empty). From ui_messages only the conversation is
taken: the task (the first `say: "text"` entry, or `say: "task"`) and `user_feedback` as the user;
`say: "text"`, `completion_result` and `ask: "followup"` questions as the assistant. Tool calls, command
output and API bookkeeping there are left out. Images are never indexed (a "[image]" note stands in
their place), nor the `<environment_details>` block Roo appends to every user message (machine
context: open tabs, clock, file listing), though the workspace and mode are taken from it when
`history_item.json` does not say them.

Every task message also says which tools it called or answered (`tool_names`: tool_use blocks, Roo/Cline
XML tool calls, `[read_file for 'x'] Result:` answers, ui_messages tool asks) and whether a tool result
in it reports a failure (`has_errors`). Every document, of tasks and trees, names its corpus root
(`source_root`), so a search can keep to one root.

Trees: one document per Markdown/text/reST/HTML/JSON file, per JSONL line and per CSV row. Files of
other formats are ignored, not rejected: a tree of code and images is not broken input. Text that is
not UTF-8 (cp1252 notes from Windows, latin-1, cp1251…) is decoded in the encoding charset-normalizer
detects; bytes no encoding explains are rejected as binary.

Nothing leaves this module unredacted: `read_unit` passes every string it returns (text, paths,
titles, workspaces, tool arguments, any metadata, rejection paths and reasons) through redaction, in
one place, so a field added later is covered too.
"""

from __future__ import annotations

import codecs
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as replaced
from html.parser import HTMLParser

import charset_normalizer

from .corpus import TREE_FORMATS, UnitFile, display_text, os_error_reason, unit_files
from .models import Document, Rejection, SourceUnit, UnitContent
from .redaction import redact

MAX_FILE_BYTES = 50 * 1024 * 1024
TITLE_CHARS = 200
IMAGE_NOTE = "[image]"

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),  # what Windows PowerShell's `>` writes
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class _Unreadable(Exception):
    """Why a file, or a part of it, cannot become a document: the message is the rejection reason."""


def read_unit(unit: SourceUnit, files: list[UnitFile] | None = None) -> UnitContent:
    """The unit's documents and rejections, every string in them redacted. `files`: the unit's listing
    (corpus.unit_files) when the caller already made it, so the unit's folders are walked once."""
    content = UnitContent(unit, [], [])
    readable = []
    for f in unit_files(unit) if files is None else files:
        if f.problem:
            _reject(content, f.rel, f.problem)
        else:
            readable.append(f)
    (_read_task if unit.kind == "task" else _read_tree)(content, readable)
    return _without_secrets(content)


def _without_secrets(content: UnitContent) -> UnitContent:
    """The one place the reader's output is redacted: document text, path and metadata at any depth,
    rejection path and reason. Doc ids are built from names corpus.py already redacted (unit keys,
    `UnitFile.ref`); redacting the joined id again could make two ids one."""
    done: dict[str, str] = {}  # task metadata repeats on every message: redact (and count) it once
    found = 0

    def clean(value):
        nonlocal found
        if isinstance(value, str):
            if value not in done:
                done[value], count = redact(value)
                found += count
            return done[value]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    documents = [
        replaced(d, text=clean(d.text), path=clean(d.path), metadata=clean(d.metadata))
        for d in content.documents
    ]
    rejected = [replaced(r, path=clean(r.path), reason=clean(r.reason)) for r in content.rejected]
    return UnitContent(content.unit, documents, rejected, found)


def _reject(content: UnitContent, path: str, reason: str) -> None:
    content.rejected.append(Rejection(unit=content.unit.key, path=path, reason=reason))


def _without_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def source_root(path: str | os.PathLike) -> str:
    """A corpus root as documents name it: absolute, as configured (links not resolved), valid UTF-8. The
    search filter names a root the same way."""
    return display_text(os.path.abspath(path))


def _title(text: str | None) -> str | None:
    # Redacted before it is cut: a cut through a secret can leave a piece no pattern recognises.
    title = " ".join(redact(text or "")[0].split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return title or None


# -- bytes to text -----------------------------------------------------------------------------


def _read_text(f: UnitFile) -> str:
    too_large = f"file too large ({f.size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB)"
    if f.size > MAX_FILE_BYTES:
        raise _Unreadable(too_large)
    try:
        with open(f.path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise _Unreadable(os_error_reason(e)) from None
    if len(data) > MAX_FILE_BYTES:  # it grew since the walk
        raise _Unreadable(too_large)
    return _decode(data)


def _decode(data: bytes) -> str:
    """Text from bytes: UTF-8 (or UTF-16) after a byte-order mark, else UTF-8, else the legacy encoding
    charset-normalizer detects."""
    codec, start = next(((c, len(bom)) for bom, c in _BOMS if data.startswith(bom)), ("utf-8", 0))
    if codec == "utf-8" and (nul := data.find(b"\0")) >= 0:
        raise _Unreadable(f"binary file (NUL byte at offset {nul})")
    try:
        text = data[start:].decode(codec)
    except UnicodeDecodeError as e:
        offset = start + e.start
        text = _legacy_text(data[start:]) if codec == "utf-8" else None
        if text is None:
            raise _Unreadable(
                f"binary file (not {codec.upper()} and no other encoding fits: byte 0x{data[offset]:02x}"
                f" at offset {offset})"
            ) from None
    if not text.strip():
        raise _Unreadable("empty file" if not text else "empty file (only whitespace)")
    return text


def _legacy_text(data: bytes) -> str | None:
    """The text in the encoding charset-normalizer finds likeliest, or None when none fits."""
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # Short texts fit many code pages equally well; among the tied ones, Windows' Western code page is
    # the likeliest for notes written on Windows (charset-normalizer would pick the first, e.g. cp1250).
    tied = {name for m in matches if m.chaos <= best.chaos for name in m.could_be_from_charset}
    return data.decode("cp1252") if "cp1252" in tied else str(best)


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _parse_json(text: str, line: int | None = None):
    """Parsed JSON; `line` is the line of a JSONL file the text came from."""
    where = f"line {line}: " if line else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        at = f"column {e.colno}" if line else f"line {e.lineno} column {e.colno}"
        raise _Unreadable(f"{where}malformed JSON at {at}: {e.msg}") from None
    except RecursionError:
        raise _Unreadable(f"{where}JSON nested too deeply to read") from None


# -- tasks -------------------------------------------------------------------------------------

_WORKSPACE = re.compile(r"# Current (?:Workspace|Working) Directory \((.+)\) Files")
_MODE = re.compile(r"<slug>([^<\s]+)</slug>")
_TASK_TAG = re.compile(r"<task>(.*?)</task>", re.DOTALL)
_ENVIRONMENT = re.compile(r"\s*<environment_details>.*?(?:</environment_details>|\Z)", re.DOTALL)


@dataclass
class _Message:
    index: int  # position in the conversation file
    role: str | None
    text: str  # as written, environment details included
    ts: int | None
    tools: list[str] = field(default_factory=list)  # called or answered in this message, in order
    error: bool = False  # a tool result in it reports a failure


# -- tools and errors in task messages -------------------------------------------------------------

# Roo and Cline answer a tool call with a text block headed `[read_file for 'src/x.py'] Result:`.
_RESULT_HEAD = re.compile(r"^\[([a-z][a-z0-9_]*)(?: for [^\n]*)?\] Result:", re.MULTILINE)
# Their older XML tool calls: a top-level `<read_file>…</read_file>` element in the assistant's text (the
# lazy match consumes the parameters, so `<start_line>` inside is never taken for a tool).
_XML_CALL = re.compile(r"^[ \t]*<([a-z]+(?:_[a-z]+)+)>.*?</\1>", re.MULTILINE | re.DOTALL)
_NOT_TOOLS = frozenset({"environment_details", "file_content", "task_progress"})
# A result that says the tool failed, whatever the tool: it opens with an error, or its status line (the
# first lines, before any output) reports a failed command.
_FAILED_OPENING = re.compile(r"\A\s*(?:Error\b|ERROR\b|\[ERROR\]|<error>|The tool execution failed)")
_FAILED_STATUS = re.compile(
    r"failed with exit code|\bcommand failed\b|command execution was not successful|exit code:? -?[1-9]",
    re.IGNORECASE,
)
# In a command's output only: a file's contents may hold `error:` or a traceback as plain data.
_COMMAND_TOOL = re.compile(r"command|bash|shell|terminal|exec", re.IGNORECASE)
_FAILED_OUTPUT = re.compile(
    r"^(?:Traceback \(most recent call last\):|\s*(?:error|Error|ERROR)(?:\[[\w-]+\])?: |npm (?:ERR!|error) )",
    re.MULTILINE,
)
STATUS_LINES = 3


def _result_failed(tool: str | None, body: str) -> bool:
    """Whether a tool's result reports a failure. Precise rather than eager: a file read that shows
    `catch (error)` or `console.error(...)` is no failure."""
    head = "\n".join(body.lstrip().split("\n", STATUS_LINES)[:STATUS_LINES])
    if _FAILED_OPENING.search(body) or _FAILED_STATUS.search(head):
        return True
    return bool(tool and _COMMAND_TOOL.search(tool) and _FAILED_OUTPUT.search(body))


def _text_results(text: str) -> tuple[list[str], bool]:
    """Tools answered in a user message's text (`[tool for 'x'] Result:` sections), and whether one failed."""
    heads = list(_RESULT_HEAD.finditer(text))
    failed = False
    for head, after in zip(heads, [*heads[1:], None]):
        body = text[head.end() : after.start() if after else len(text)]
        failed = failed or _result_failed(head[1], body)
    return [h[1] for h in heads], failed


def _xml_calls(text: str) -> list[str]:
    return [m[1] for m in _XML_CALL.finditer(text) if m[1] not in _NOT_TOOLS]


def _block_tools(block, role: str | None, names: dict[str, str]) -> tuple[list[str], bool]:
    """The tools one block calls or answers, and whether it reports a failure. `names` maps tool_use ids
    to tool names, filled as the conversation is read (a result follows its call)."""
    if isinstance(block, str):
        block = {"type": "text", "text": block}
    if not isinstance(block, dict):
        return [], False
    kind = block.get("type")
    if kind == "tool_use":
        name = _str(block.get("name"))
        if name and isinstance(block.get("id"), str):
            names[block["id"]] = name
        return [name] if name else [], False
    if kind == "tool_result":
        name = names.get(block.get("tool_use_id"))
        content = block.get("content")
        body = content if isinstance(content, str) else ""
        if isinstance(content, list):
            body = "\n\n".join(filter(None, map(_block_text, content)))
        tools, failed = _text_results(body)  # Roo also heads a tool_result's text this way
        tools = ([name] if name else []) + tools
        return tools, block.get("is_error") is True or failed or _result_failed(name, body)
    text = block.get("text")
    if not isinstance(text, str):
        return [], False
    if role == "assistant":
        return _xml_calls(text), False
    if role == "user":
        return _text_results(text)
    return [], False


def _str(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _timestamp(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _load_json(content: UnitContent, f: UnitFile | None, expected: type):
    """The parsed file, or None when it is missing or was rejected."""
    if f is None:
        return None
    try:
        value = _parse_json(_read_text(f))
        if not isinstance(value, expected):
            raise _Unreadable(
                f"expected {_json_type(expected())} at the top level, found {_json_type(value)}"
            )
        return value
    except _Unreadable as e:
        _reject(content, f.rel, str(e))
        return None


def _block_text(block) -> str:
    """One block of an Anthropic-style message as text; images become a note, never base64."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "image":
        return IMAGE_NOTE
    if kind == "tool_use":
        return f"tool_use {block.get('name') or 'tool'}: {json.dumps(block.get('input'), ensure_ascii=False)}"
    if kind == "tool_result":
        body = block.get("content")
        body = "\n\n".join(filter(None, map(_block_text, body))) if isinstance(body, list) else _str(body)
        return f"tool_result: {body}" if body else ""
    text = block.get("text")
    return text if isinstance(text, str) else ""


def _api_messages(content: UnitContent, f: UnitFile, data: list) -> list[_Message]:
    messages = []
    names: dict[str, str] = {}  # tool_use id -> tool name, for the results that answer them
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            _reject(content, f.rel, f"message {i}: expected an object, found {_json_type(raw)}")
            continue
        body = raw.get("content")
        if isinstance(body, list):
            text = "\n\n".join(filter(None, map(_block_text, body)))
        elif isinstance(body, str) or body is None:
            text = body or ""
        else:
            _reject(
                content, f.rel, f"message {i}: content is {_json_type(body)}, not text or a list of blocks"
            )
            continue
        role = _str(raw.get("role"))
        found = [_block_tools(b, role, names) for b in (body if isinstance(body, list) else [text])]
        tools = list(dict.fromkeys(t for ts, _ in found for t in ts))
        messages.append(_Message(i, role, text, _timestamp(raw.get("ts")), tools, any(e for _, e in found)))
    return messages


_UI_ROLES = {
    ("say", "task"): "user",
    ("say", "user_feedback"): "user",
    ("say", "text"): "assistant",
    ("say", "completion_result"): "assistant",
    ("ask", "followup"): "assistant",
}


def _followup_text(text: str) -> str:
    """Newer Roo versions store a follow-up question as JSON with suggested answers."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not isinstance(value, dict) or not isinstance(value.get("question"), str):
        return text
    answers = [s.get("answer") if isinstance(s, dict) else s for s in value.get("suggest") or []]
    return "\n".join([value["question"], *(f"- {a}" for a in answers if isinstance(a, str))])


def _ui_messages(content: UnitContent, f: UnitFile, data: list) -> list[_Message]:
    messages = []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            _reject(content, f.rel, f"message {i}: expected an object, found {_json_type(raw)}")
            continue
        kind = raw.get("type")
        entry = (kind, raw.get(kind)) if kind in ("say", "ask") else None
        # Roo and Cline record the task itself as the first `say: "text"` entry.
        role = "user" if i == 0 and entry == ("say", "text") else _UI_ROLES.get(entry)
        text = raw.get("text")
        if messages and raw.get("partial") is not True:  # a tool step belongs to the message before it
            _ui_tool_step(messages[-1], entry, text)
        if role is None or raw.get("partial") is True or not isinstance(text, str):
            continue
        if entry == ("ask", "followup"):
            text = _followup_text(text)
        messages.append(_Message(i, role, text, _timestamp(raw.get("ts"))))
    return messages


_UI_TOOL_ASKS = {
    "command": "execute_command",
    "use_mcp_server": "use_mcp_tool",
    "browser_action_launch": "browser_action",
}
_UI_ERRORS = frozenset({("say", "error"), ("say", "diff_error"), ("say", "rooignore_error")})


def _ui_tool_step(message: _Message, entry: tuple | None, text) -> None:
    """Tools and failures the ui_messages record between conversation messages, on the message before."""
    tool = None
    if entry == ("ask", "tool") and isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict) and _str(value.get("tool")):
            # `readFile` here is `read_file` in the API history: one name for one tool
            tool = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", value["tool"].strip()).lower()
    elif entry and entry[0] == "ask":
        tool = _UI_TOOL_ASKS.get(entry[1])
    if tool and tool not in message.tools:
        message.tools.append(tool)
    if entry in _UI_ERRORS or (
        entry == ("say", "command_output")
        and isinstance(text, str)
        and _result_failed("execute_command", text)
    ):
        message.error = True


_CONVERSATIONS: tuple[tuple[str, Callable[[UnitContent, UnitFile, list], list[_Message]]], ...] = (
    ("api_conversation_history.json", _api_messages),
    ("claude_messages.json", _api_messages),  # the same format, in tasks from before mid-2024
    ("ui_messages.json", _ui_messages),
)


def _conversation(content: UnitContent, files: dict[str, UnitFile]) -> tuple[UnitFile | None, list[_Message]]:
    for name, parse in _CONVERSATIONS:
        data = _load_json(content, files.get(name), list)
        if data:
            return files[name], parse(content, files[name], data)
    return None, []


def _task_text(text: str) -> str:
    """What the user asked: the `<task>` element of the first message, or its text."""
    match = _TASK_TAG.search(text)
    return match.group(1) if match else _ENVIRONMENT.sub("", text)


def _search(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1).strip() if match else None


def _task_metadata(unit: SourceUnit, history: dict | None, files_meta: dict | None, messages: list[_Message]):
    """Task-level metadata: history_item.json first, then what the first user message shows."""
    history = history or {}
    first = next((m.text for m in messages if m.role == "user"), "")
    in_context = (files_meta or {}).get("files_in_context")
    return {
        "kind": "task",
        "source_root": source_root(unit.root),
        "task_id": display_text(unit.path.name),
        "parent_task_id": _str(history.get("parentTaskId")),
        "root_task_id": _str(history.get("rootTaskId")),
        "workspace": _str(history.get("workspace")) or _search(_WORKSPACE, first),
        "title": _title(_str(history.get("task")) or _task_text(first)),
        "mode": _str(history.get("mode")) or _search(_MODE, first),
        "files_in_context": len(in_context) if isinstance(in_context, list) else None,
    }


def _read_task(content: UnitContent, files: list[UnitFile]) -> None:
    by_name = {f.path.name: f for f in files}
    source, messages = _conversation(content, by_name)
    history = _load_json(content, by_name.get("history_item.json"), dict)
    files_meta = _load_json(content, by_name.get("task_metadata.json"), dict)
    task = _task_metadata(content.unit, history, files_meta, messages)
    key = content.unit.key
    for m in messages:
        text = _ENVIRONMENT.sub("", m.text).strip()
        if not text.replace(IMAGE_NOTE, "").strip():
            continue  # nothing but images and machine context
        meta = {
            **task,
            "role": m.role,
            "message_index": m.index,
            "timestamp": m.ts,
            "tool_names": m.tools,
            "has_errors": m.error,
        }
        content.documents.append(
            Document(f"{key}:m{m.index:05d}", key, source.rel, text, _without_none(meta))
        )


# -- document trees ----------------------------------------------------------------------------


@dataclass
class _Part:
    """A document-to-be from a tree file; `suffix` tells parts of one file apart in their doc ids."""

    text: str
    title: str | None = None
    suffix: str = ""
    extra: dict = field(default_factory=dict)


_MD_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:._])\1{2,}\s*$")


def _markdown(text: str) -> Iterator[_Part]:
    yield _Part(text, _search(_MD_HEADING, text))


def _plain(text: str) -> Iterator[_Part]:
    yield _Part(text)


def _rst(text: str) -> Iterator[_Part]:
    lines = text.splitlines()
    title = next(
        (
            line.strip()
            for line, under in itertools.pairwise(lines)
            if line.strip() and not _RST_ADORNMENT.match(line) and _RST_ADORNMENT.match(under)
        ),
        None,
    )
    yield _Part(text, title)


class _VisibleText(HTMLParser):
    """The text a browser shows, one block element per line, and the <title>; script and style
    contents are dropped."""

    HIDDEN = frozenset({"script", "style", "template", "noscript"})
    BLOCKS = frozenset({
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "tr", "ul",
    })  # fmt: skip

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.hidden = 0
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag == "title":
            self.in_title = True
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):  # cells of a row stay on its line, apart
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.in_title:
            self.title_parts.append(data)
        elif not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))  # source line breaks are not visible

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)


def _html(text: str) -> Iterator[_Part]:
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    body = parser.text()
    if body:
        yield _Part(body, _title("".join(parser.title_parts)))


def _flatten(value, prefix: str = "") -> Iterator[str]:
    """JSON as `key.path[0]: value` lines."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        scalar = value if isinstance(value, str) else json.dumps(value)
        yield f"{prefix}: {scalar}" if prefix else scalar


def _json(text: str) -> Iterator[_Part]:
    body = "\n".join(_flatten(_parse_json(text)))
    if body.strip():
        yield _Part(body)


def _jsonl(text: str) -> Iterator[_Part | _Unreadable]:
    """One part per line; a malformed line is rejected on its own (yielded, not raised)."""
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            record = _parse_json(line, n)
        except _Unreadable as e:
            yield e
            continue
        body = "\n".join(_flatten(record))
        if body.strip():
            yield _Part(body, suffix=f"#L{n}", extra={"line": n})


def _csv(text: str) -> Iterator[_Part]:
    import pandas as pd  # here, not at the top: its 0.3 s import was a fifth of every cold CLI `search`

    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except ValueError as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise _Unreadable(f"CSV could not be parsed: {str(e).strip()}") from None
    columns = [str(c) for c in frame.columns]
    for n, row in enumerate(frame.itertuples(index=False, name=None), 1):
        body = "\n".join(f"{c}: {v}" for c, v in zip(columns, row) if v.strip())  # all str: dtype=str
        if body:
            yield _Part(body, suffix=f"#R{n}", extra={"row": n})


_FORMAT_READERS: dict[str, Callable[[str], Iterator[_Part | _Unreadable]]] = {
    "md": _markdown,
    "txt": _plain,
    "rst": _rst,
    "html": _html,
    "json": _json,
    "jsonl": _jsonl,
    "csv": _csv,
}


def _read_tree(content: UnitContent, files: list[UnitFile]) -> None:
    key = content.unit.key
    for f in files:
        fmt = TREE_FORMATS[f.path.suffix.lower()]
        try:
            parts = list(_FORMAT_READERS[fmt](_read_text(f)))
        except _Unreadable as e:
            _reject(content, f.rel, str(e))
            continue
        except RecursionError:  # flattening JSON nested nearly as deep as the parser allows
            _reject(content, f.rel, "JSON nested too deeply to read")
            continue
        if not parts:
            _reject(content, f.rel, f"no text to index in this {fmt.upper()} file")
        name = f.rel.rsplit("/", 1)[-1]
        for part in parts:
            if isinstance(part, _Unreadable):
                _reject(content, f.rel, str(part))
                continue
            meta = {
                "kind": "tree",
                "source_root": source_root(content.unit.root),
                "format": fmt,
                "title": _title(part.title) or name,
                **part.extra,
            }
            content.documents.append(Document(f"{key}:{f.ref}{part.suffix}", key, f.rel, part.text, meta))
