"""Commands for review: `graph` draws the dependency graph, `lint` checks the tree without a
daemon. Parse, call dockerpkg.review, print, choose the status."""

from __future__ import annotations

import sys
from pathlib import Path

import argh

from dockerpkg.api import review
from dockerpkg.cli.common import EXIT_ERROR, Context, ExitStatus
from dockerpkg.core.graph_render import GraphFormat, to_dot, to_mermaid
from dockerpkg.core.lint import (
    RuleChoice,
    count,
    findings_json,
    findings_text,
    rules_text,
    strictly,
)
from dockerpkg.errors import DockerPkgError, Severity, problem_lines

_FORMATS = [f.value for f in GraphFormat]


class ReviewCommands:
    """The graph and lint commands, sharing CTX (global options, environment)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--format", "-f", dest="fmt", choices=_FORMATS, help="dot (Graphviz) or mermaid")
    @argh.arg("--select", "-s", help="fnmatch glob on full labels; the matches and what they need")
    @argh.arg("--out", "-o", help="write the graph to this file instead of stdout")
    def graph(
        self,
        directory: str,
        *,
        fmt: str = GraphFormat.DOT.value,
        select: str | None = None,
        out: str | None = None,
    ) -> None:
        """Print the dependency graph: an arrow from each image to the images built on it."""
        drawn, warnings = review.dependency_graph(
            directory, self.ctx.config_path, self.ctx.env, select
        )
        for line in problem_lines(warnings, directory, every=self.ctx.echo):
            print(line, file=sys.stderr)
        if select is not None and not drawn.nodes:
            print(f"no image matches --select {select}", file=sys.stderr)
        text = to_dot(drawn) if GraphFormat(fmt) is GraphFormat.DOT else to_mermaid(drawn)
        if out:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise DockerPkgError.single(out, f"cannot write: {exc.strerror}") from None
        else:
            sys.stdout.write(text)

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--strict", help="treat warnings as errors")
    @argh.arg("--json", "-j", dest="json_output", help="print the findings as JSON")
    @argh.arg("--select", help="RULE,...: these rules instead of the defaults (ALL: every rule)")
    @argh.arg("--extend-select", "-e", help="RULE,...: these rules besides the selected ones")
    @argh.arg("--ignore", "-i", help="RULE,...: leave these rules out")
    @argh.arg(
        "--list-rules", "-l", help="print every rule, whether it is on by default, what it finds"
    )
    def lint(
        self,
        *directory: str,
        strict: bool = False,
        json_output: bool = False,
        select: str | None = None,
        extend_select: str | None = None,
        ignore: str | None = None,
        list_rules: bool = False,
    ) -> None:
        """Check the tree without a daemon; exit 1 on errors, 0 with warnings only."""
        if list_rules:
            sys.stdout.write(rules_text())
            return
        if len(directory) != 1:
            raise DockerPkgError.single("lint", "give one image tree (or --list-rules)")
        choice = RuleChoice(
            None if select is None else _split(select), _split(extend_select), _split(ignore)
        )
        findings = review.lint(directory[0], self.ctx.config_path, self.ctx.env, choice)
        if strict:
            findings = strictly(findings)
        sys.stdout.write(findings_json(findings) if json_output else findings_text(findings))
        sys.stdout.flush()
        if count(findings, Severity.ERROR):
            raise ExitStatus(EXIT_ERROR)


def _split(codes: str | None) -> tuple[str, ...]:
    """`a,b, c` -> ("a", "b", "c")."""
    return tuple(code.strip() for code in (codes or "").split(",") if code.strip())
