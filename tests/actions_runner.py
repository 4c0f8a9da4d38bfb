"""Run a GitHub Actions workflow's job graph locally, for tests.

Not an emulator of GitHub Actions, only of what a test of our workflows needs: the expression
language (contexts, operators, the common functions), env merged workflow > job > step,
`if:` conditions, matrices, each step's own GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH files,
job outputs, and upload/download-artifact emulated by copying folders. Other `uses:` steps
go to handlers that the test supplies (e.g. checkout: copy a repo; setup-python: nothing).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Context = dict[str, Any]
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|'(?P<str>(?:[^']|'')*)'|"
                    r"(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\],.*])|(?P<id>[A-Za-z_][\w-]*))")
_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_WHOLE = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.S)
_STATUS = "__status__"  # the context key the status functions read
ARTIFACT_ACTIONS = {"actions/upload-artifact": "upload", "actions/download-artifact": "download"}


class WorkflowError(Exception):
    """Something the workflow asks for that this runner does not support or cannot parse."""


def load_workflow(path: Path | str) -> dict[str, Any]:
    """A workflow file as a dict (YAML 1.1 reads the `on:` key as True; undo that)."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if True in doc:
        doc["on"] = doc.pop(True)
    return dict(doc)


# ---------------------------------------------------------------------------- expressions

class _Filtered(list[Any]):
    """The result of an `.*` object filter: later property access maps over it."""


def _tokens(expr: str) -> list[tuple[str, Any]]:
    out, pos, expr = [], 0, expr.strip()
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match or match.end() == pos:
            raise WorkflowError(f"cannot parse expression at {expr[pos:]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value: Any = match.group(kind)
        if kind == "str":
            value = value.replace("''", "'")
        elif kind == "num":
            value = float(value)
        out.append((kind, value))
    return out


class _Parser:
    """Recursive descent over the tokens; evaluates while parsing (no short-circuit needed)."""

    def __init__(self, expr: str, context: Context) -> None:
        self.tokens, self.pos, self.context = _tokens(expr), 0, context

    def peek(self, *values: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] in [("op", v) for v in values]

    def take(self, value: str) -> None:
        if not self.peek(value):
            raise WorkflowError(f"expected {value!r} at token {self.pos}")
        self.pos += 1

    def parse(self) -> Any:
        value = self.or_()
        if self.pos != len(self.tokens):
            raise WorkflowError(f"unexpected token {self.tokens[self.pos]!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek("||"):
            self.pos += 1
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.compare()
        while self.peek("&&"):
            self.pos += 1
            right = self.compare()
            value = right if truthy(value) else value
        return value

    def compare(self) -> Any:
        value = self.unary()
        while self.peek("==", "!=", "<", ">", "<=", ">="):
            op = self.tokens[self.pos][1]
            self.pos += 1
            value = _compare(op, value, self.unary())
        return value

    def unary(self) -> Any:
        if self.peek("!"):
            self.pos += 1
            return not truthy(self.unary())
        return self.postfix(self.primary())

    def postfix(self, value: Any) -> Any:
        while self.peek(".", "["):
            if self.peek("["):
                self.pos += 1
                key = self.or_()
                self.take("]")
                value = _index(value, key)
                continue
            self.pos += 1
            if self.peek("*"):
                self.pos += 1
                value = _Filtered(value.values() if isinstance(value, dict) else value or [])
                continue
            value = _index(value, self.tokens[self.pos][1])
            self.pos += 1
        return value

    def primary(self) -> Any:
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind in ("num", "str"):
            return int(value) if kind == "num" and value.is_integer() else value
        if (kind, value) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if kind != "id":
            raise WorkflowError(f"unexpected {value!r}")
        if self.peek("("):
            return self.call(value.lower())
        literals = {"true": True, "false": False, "null": None}
        return literals[value] if value in literals else _index(self.context, value)

    def call(self, name: str) -> Any:
        self.take("(")
        args: list[Any] = []
        while not self.peek(")"):
            args.append(self.or_())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        if name not in _FUNCTIONS:
            raise WorkflowError(f"unsupported function {name}()")
        return _FUNCTIONS[name](self.context, *args)


def _index(value: Any, key: Any) -> Any:
    """Property access: case-insensitive on objects, mapped over `.*` results."""
    if isinstance(value, _Filtered):
        return _Filtered(_index(item, key) for item in value)
    if isinstance(value, dict):
        wanted = str(key).lower()
        return next((v for k, v in value.items() if str(k).lower() == wanted), None)
    if isinstance(value, list) and isinstance(key, int | float) and 0 <= key < len(value):
        return value[int(key)]
    return None


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | int | float):
        return float(value or 0)
    try:
        return float(str(value).strip() or 0)
    except ValueError:
        return math.nan


def _compare(op: str, left: Any, right: Any) -> bool:
    a: Any
    b: Any
    if isinstance(left, str) and isinstance(right, str):
        a, b = left.lower(), right.lower()
    elif type(left) is type(right) and not isinstance(left, str):
        a, b = left, right
    else:
        a, b = _number(left), _number(right)
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda x, y: bool(x == y), "!=": lambda x, y: bool(x != y),
        "<": lambda x, y: bool(x < y), ">": lambda x, y: bool(x > y),
        "<=": lambda x, y: bool(x <= y), ">=": lambda x, y: bool(x >= y)}
    return ops[op](a, b)


def truthy(value: Any) -> bool:
    """GitHub's truthiness: null, false, 0, '' and NaN are false."""
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def to_str(value: Any) -> str:
    """How a value reads when substituted into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def _status(context: Context, name: str) -> bool:
    return bool(context.get(_STATUS, {"success": True}).get(name, False))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "success": lambda c: _status(c, "success"),
    "failure": lambda c: _status(c, "failure"),
    "cancelled": lambda c: _status(c, "cancelled"),
    "always": lambda c: True,
    "contains": lambda c, hay, needle: (
        any(_compare("==", item, needle) for item in hay) if isinstance(hay, list)
        else to_str(needle).lower() in to_str(hay).lower()),
    "startswith": lambda c, s, p: to_str(s).lower().startswith(to_str(p).lower()),
    "endswith": lambda c, s, p: to_str(s).lower().endswith(to_str(p).lower()),
    "format": lambda c, f, *a: re.sub(r"\{(\d+)\}", lambda m: to_str(a[int(m[1])]), to_str(f)),
    "join": lambda c, items, sep=",": (to_str(sep).join(to_str(i) for i in items)
                                       if isinstance(items, list) else to_str(items)),
    "tojson": lambda c, value: json.dumps(value, indent=2),
    "fromjson": lambda c, text: json.loads(to_str(text)),
}


def evaluate(expr: str, context: Context) -> Any:
    """The value of one expression (with or without its `${{ }}`)."""
    whole = _WHOLE.match(expr)
    return _Parser(whole.group(1) if whole else expr, context).parse()


def expand(value: Any, context: Context) -> Any:
    """Substitute `${{ }}` in strings (recursively); a lone expression keeps its type."""
    if isinstance(value, dict):
        return {k: expand(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, context) for v in value]
    if not isinstance(value, str):
        return value
    whole = _WHOLE.match(value)
    if whole and "${{" not in whole.group(1):
        return evaluate(whole.group(1), context)
    return _EXPR.sub(lambda m: to_str(evaluate(m.group(1), context)), value)


def condition(expr: Any, context: Context, default: str = "success()") -> bool:
    """An `if:`; like GitHub, a condition without a status function implies success()."""
    text = default if expr in (None, "") else str(expr)
    inner = _WHOLE.match(text)
    text = inner.group(1) if inner else text
    if not re.search(r"\b(success|failure|cancelled|always)\s*\(", text):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context))


# ---------------------------------------------------------------------------- steps and jobs

@dataclass(frozen=True, kw_only=True)
class Artifact:
    """The inputs of an upload-artifact / download-artifact step."""

    kind: str  # "upload" or "download"
    name: str
    path: str
    pattern: str = ""
    merge_multiple: bool = False
    include_hidden: bool = False
    if_no_files_found: str = "warn"


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step with `with:` and env expanded from the context it was built with."""

    index: int
    id: str
    name: str
    run: str | None
    uses: str | None
    with_: dict[str, str]
    env: dict[str, str]
    condition: str | None
    working_directory: str | None = None
    continue_on_error: bool = False

    @property
    def action(self) -> str:
        """`uses:` without its `@ref` ("" for run steps)."""
        return (self.uses or "").split("@", 1)[0]

    @property
    def artifact(self) -> Artifact | None:
        kind = ARTIFACT_ACTIONS.get(self.action)
        if kind is None:
            return None
        w = self.with_
        return Artifact(kind=kind, name=w.get("name", ""), path=w.get("path", ""),
                        pattern=w.get("pattern", ""),
                        merge_multiple=w.get("merge-multiple", "false") == "true",
                        include_hidden=w.get("include-hidden-files", "false") == "true",
                        if_no_files_found=w.get("if-no-files-found", "warn"))


def _env(scope: Mapping[str, Any], context: Context) -> dict[str, str]:
    return {k: to_str(expand(v, context)) for k, v in (scope.get("env") or {}).items()}


def job_env(workflow: Mapping[str, Any], job: str, context: Context) -> dict[str, str]:
    """Workflow env, then the job's (job wins)."""
    return {**_env(workflow, context), **_env(workflow["jobs"][job], context)}


def build_step(workflow: Mapping[str, Any], job: str, index: int, context: Context) -> Step:
    """Step `index` of a job, expanded with `context` (steps.* as known so far)."""
    raw = workflow["jobs"][job]["steps"][index]
    env = job_env(workflow, job, context)
    env.update(_env(raw, {**context, "env": {**context.get("env", {}), **env}}))
    scoped = {**context, "env": {**context.get("env", {}), **env}}
    return Step(index=index, id=str(raw.get("id") or f"__{index}"),
                name=str(raw.get("name") or raw.get("uses") or raw.get("run", "")[:40]),
                run=expand(raw["run"], scoped) if "run" in raw else None, uses=raw.get("uses"),
                with_={k: to_str(expand(v, scoped)) for k, v in (raw.get("with") or {}).items()},
                env=env, condition=raw.get("if"),
                working_directory=raw.get("working-directory"),
                continue_on_error=bool(raw.get("continue-on-error", False)))


def job_steps(workflow: Mapping[str, Any], job: str, context: Context) -> list[Step]:
    """Every step of a job, expanded with the same context (for inspection)."""
    return [build_step(workflow, job, i, context)
            for i in range(len(workflow["jobs"][job].get("steps", [])))]


def matrix_legs(workflow: Mapping[str, Any], job: str, context: Context) -> list[dict[str, Any]]:
    """The legs of a job's matrix ([{}] without one): product of lists, plus `include`."""
    matrix = expand((workflow["jobs"][job].get("strategy") or {}).get("matrix"), context)
    if not matrix:
        return [{}]
    legs: list[dict[str, Any]] = [{}]
    for key, values in matrix.items():
        if key not in ("include", "exclude"):
            legs = [{**leg, key: v} for leg in legs for v in values]
    legs = [leg for leg in legs if leg] + list(matrix.get("include") or [])
    return legs or [{}]


def parse_env_file(path: Path) -> dict[str, str]:
    """`name=value` and `name<<DELIM ... DELIM` lines (GITHUB_OUTPUT, GITHUB_ENV)."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        name, sep, value = lines[i].partition("=")
        if "<<" in lines[i] and (not sep or "<<" in name):
            name, delim = lines[i].split("<<", 1)
            end = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1:end])
            i = end
        elif sep:
            out[name] = value
        i += 1
    return out


@dataclass
class JobRun:
    """One job (one matrix leg) being run in `workspace`, artifacts shared in `artifacts`."""

    workflow: Mapping[str, Any]
    job: str
    context: Context
    workspace: Path
    artifacts: Path
    base_env: Mapping[str, str] = field(default_factory=dict)
    handlers: Mapping[str, Callable[[Step, JobRun], Mapping[str, str] | None]] = field(
        default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    path_prepend: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)  # (step name, outcome)

    def run(self) -> tuple[str, dict[str, str]]:
        """Run the steps; the job's result and its expanded outputs."""
        self.context.setdefault("steps", {})
        self.context[_STATUS] = {"success": True}
        self.context["job"] = {"status": "success"}
        run_dir = self.workspace.parent / f".runner-{self.workspace.name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env["GITHUB_STEP_SUMMARY"] = str(run_dir / "summary.md")
        for index in range(len(self.workflow["jobs"][self.job].get("steps", []))):
            self._step(build_step(self.workflow, self.job, index, self.context), run_dir)
        ok = self.context["job"]["status"] == "success"
        outputs = self.workflow["jobs"][self.job].get("outputs") or {}
        return ("success" if ok else "failure",
                {k: to_str(expand(v, self.context)) for k, v in outputs.items()})

    def _step(self, step: Step, run_dir: Path) -> None:
        if not condition(step.condition, self.context):
            self.context["steps"][step.id] = {"outputs": {}, "outcome": "skipped",
                                              "conclusion": "skipped"}
            self.log.append((step.name, "skipped"))
            return
        try:
            outputs, ok = self._execute(step, run_dir), True
        except subprocess.CalledProcessError:
            outputs, ok = {}, False
        outcome = "success" if ok else "failure"
        conclusion = "success" if ok or step.continue_on_error else "failure"
        self.context["steps"][step.id] = {"outputs": outputs, "outcome": outcome,
                                          "conclusion": conclusion}
        self.log.append((step.name, outcome))
        if conclusion == "failure":
            self.context["job"] = {"status": "failure"}
            self.context[_STATUS] = {"failure": True}

    def _execute(self, step: Step, run_dir: Path) -> dict[str, str]:
        if step.run is not None:
            return self.run_script(step, run_dir)
        if step.artifact is not None:
            (upload if step.artifact.kind == "upload" else download)(
                step.artifact, self.workspace, self.artifacts)
            return {}
        handler = self.handlers.get(step.action)
        if handler is None:
            raise WorkflowError(f"{self.job}: no handler for `uses: {step.uses}`")
        return dict(handler(step, self) or {})

    def step_env(self, step: Step, files: Mapping[str, Path]) -> dict[str, str]:
        """The process env of a step: base, GITHUB_* defaults, exported env, step env."""
        env = {**self.base_env, **github_env(self.context, self.workspace), **self.extra_env,
               **step.env, **{k: str(v) for k, v in files.items()}}
        if self.path_prepend:
            env["PATH"] = os.pathsep.join([*self.path_prepend, env.get("PATH", "")])
        return env

    def run_script(self, step: Step, run_dir: Path) -> dict[str, str]:
        """Run a `run:` script with bash -e -o pipefail; its outputs, GITHUB_ENV/PATH applied."""
        files = {name: run_dir / f"{step.index}.{name.lower()}"
                 for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
        for path in files.values():
            path.write_text("")
        script = run_dir / f"{step.index}.sh"
        script.write_text(step.run or "", encoding="utf-8")
        cwd = self.workspace / (step.working_directory or "")
        subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                       cwd=cwd, env=self.step_env(step, files), check=True)
        self.extra_env.update(parse_env_file(files["GITHUB_ENV"]))
        self.path_prepend[:0] = files["GITHUB_PATH"].read_text().split()
        return parse_env_file(files["GITHUB_OUTPUT"])


def github_env(context: Context, workspace: Path) -> dict[str, str]:
    """The default GITHUB_* / RUNNER_* variables, from the github and runner contexts."""
    env = {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}
    for key, value in (context.get("github") or {}).items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            env[f"GITHUB_{key.upper()}"] = str(value)
    for key, value in (context.get("runner") or {}).items():
        env[f"RUNNER_{key.upper()}"] = str(value)
    env.pop("GITHUB_TOKEN", None)  # never implied; a step passes it explicitly
    return env


# ---------------------------------------------------------------------------- artifacts

def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def upload(artifact: Artifact, workspace: Path, store: Path) -> None:
    """Copy files into store/<name>, relative to the least common ancestor, like v4."""
    if not artifact.name:
        raise WorkflowError("upload-artifact needs a name here")
    target = store / artifact.name
    if target.exists():
        raise WorkflowError(f"artifact {artifact.name!r} already exists (v4 artifacts are "
                            "immutable)")
    found: list[tuple[Path, Path]] = []  # (file, search root)
    for line in artifact.path.splitlines():
        root = workspace / line.strip()
        if root.is_file():
            found.append((root, root.parent))
        elif root.is_dir():
            found += [(f, root) for f in sorted(root.rglob("*")) if f.is_file()
                      and (artifact.include_hidden or not _hidden(f.relative_to(root)))]
    if not found:
        if artifact.if_no_files_found == "error":
            raise subprocess.CalledProcessError(1, f"upload {artifact.name}: no files")
        return
    base = Path(os.path.commonpath([str(root) for _, root in found]))
    for path, _ in found:
        dest = target / path.relative_to(base)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def download(artifact: Artifact, workspace: Path, store: Path) -> None:
    """One artifact into `path`, or several (pattern/all) into `path/<name>/` each."""
    dest = workspace / (artifact.path or ".")
    if artifact.name:
        if not (store / artifact.name).is_dir():
            raise subprocess.CalledProcessError(1, f"artifact {artifact.name!r} not found")
        shutil.copytree(store / artifact.name, dest, dirs_exist_ok=True)
        return
    names = sorted(p.name for p in store.iterdir()) if store.is_dir() else []
    for name in names:
        if not artifact.pattern or fnmatch.fnmatchcase(name, artifact.pattern):
            into = dest if artifact.merge_multiple else dest / name
            shutil.copytree(store / name, into, dirs_exist_ok=True)


# ---------------------------------------------------------------------------- the job graph

@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """A job over all its legs: GitHub's `needs.<job>` view plus per-leg logs."""

    result: str  # success, failure or skipped
    outputs: dict[str, str]
    legs: list[list[tuple[str, str]]]
    max_parallel: int | None = None  # strategy.max-parallel, evaluated (legs run in turn)


def job_order(workflow: Mapping[str, Any]) -> list[str]:
    """Jobs in an order where each comes after the jobs it needs."""
    done: list[str] = []
    pending = list(workflow["jobs"])
    while pending:
        ready = [j for j in pending if set(_needs(workflow, j)) <= set(done)]
        if not ready:
            raise WorkflowError(f"needs cycle among {pending}")
        done += ready
        pending = [j for j in pending if j not in ready]
    return done


def _needs(workflow: Mapping[str, Any], job: str) -> list[str]:
    needs = workflow["jobs"][job].get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def job_should_run(workflow: Mapping[str, Any], job: str, context: Context) -> bool:
    """A job's `if:`, with status functions over the results of the jobs it needs."""
    results = [n["result"] for n in (context.get("needs") or {}).values()]
    status = {"success": all(r == "success" for r in results),
              "failure": "failure" in results, "cancelled": False}
    return condition(workflow["jobs"][job].get("if"), {**context, _STATUS: status})


def run_workflow(workflow: Mapping[str, Any], context: Context, *,
                 workspace: Callable[[str, int], Path], artifacts: Path,
                 env: Mapping[str, str] | None = None,
                 handlers: Mapping[str, Callable[[Step, JobRun], Mapping[str, str] | None]]
                 | None = None) -> dict[str, JobOutcome]:
    """Run every job in order; `workspace(job, leg)` gives each leg a fresh folder."""
    outcomes: dict[str, JobOutcome] = {}
    for job in job_order(workflow):
        needs = {n: {"result": outcomes[n].result, "outputs": outcomes[n].outputs}
                 for n in _needs(workflow, job)}
        ctx = {**context, "needs": needs}
        if not job_should_run(workflow, job, ctx):
            outcomes[job] = JobOutcome(result="skipped", outputs={}, legs=[])
            continue
        outcomes[job] = _run_legs(workflow, job, ctx, workspace, artifacts, env or {},
                                  handlers or {})
    return outcomes


def _run_legs(workflow: Mapping[str, Any], job: str, ctx: Context,
              workspace: Callable[[str, int], Path], artifacts: Path, env: Mapping[str, str],
              handlers: Mapping[str, Callable[[Step, JobRun], Mapping[str, str] | None]],
              ) -> JobOutcome:
    results, outputs, logs = [], {}, []
    for index, leg in enumerate(matrix_legs(workflow, job, ctx)):
        leg_ctx = {**ctx, "matrix": leg, "strategy": {"job-index": index}, "steps": {}}
        run = JobRun(workflow=workflow, job=job, context=leg_ctx,
                     workspace=workspace(job, index), artifacts=artifacts, base_env=env,
                     handlers=handlers)
        result, leg_outputs = run.run()
        results.append(result)
        outputs.update({k: v for k, v in leg_outputs.items() if v})  # last non-empty wins
        logs.append(run.log)
    result = "success" if all(r == "success" for r in results) else "failure"
    return JobOutcome(result=result, outputs=outputs, legs=logs,
                      max_parallel=_max_parallel(workflow, job, ctx))


def _max_parallel(workflow: Mapping[str, Any], job: str, ctx: Context) -> int | None:
    """The job's `strategy.max-parallel`, which GitHub needs to be a positive number."""
    raw = (workflow["jobs"][job].get("strategy") or {}).get("max-parallel")
    if raw is None:
        return None
    value = expand(raw, ctx)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise WorkflowError(f"{job}: max-parallel is {value!r}, not a positive number")
    return int(value)
