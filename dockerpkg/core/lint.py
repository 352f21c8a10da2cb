"""`lint`: the checks that need no daemon, as findings with a rule code and a location.

Every template is rendered (with force_numeric_user off, so the USER rule can report on
every image) and every changelog is read in full. Besides the rules below, every problem
reading the tree finds is a `bad-input` finding with its own severity (parse errors, unknown
images, cycles: errors). Findings are sorted by file, line and rule, so the report does not
vary between runs.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import attrs
from debian.changelog import Changelog, ChangelogParseError, topline
from debian.debian_support import Version

from dockerpkg.core.config import Config
from dockerpkg.core.labels import join_repository
from dockerpkg.core.render import KnownImages, Rendered, non_numeric_user
from dockerpkg.core.spec import ImageSpec, Snapshot, _first_bad_line
from dockerpkg.core.tree import Analysis, analyze_tree, known_images, undeclared_warning
from dockerpkg.core.versions import VersionError, parse_version
from dockerpkg.errors import DockerPkgError, Location, Problem, Severity


class Rule(enum.Enum):
    """What a finding is about; the value is the stable code shown in the report."""

    BAD_INPUT = "bad-input"
    UNDECLARED_DEPENDENCY = "undeclared-dependency"
    UNUSED_DEPENDENCY = "unused-dependency"
    NON_NUMERIC_USER = "non-numeric-user"
    MISSING_TEST = "missing-test"
    CHANGELOG_ORDER = "changelog-order"


@attrs.frozen
class RuleInfo:
    """What `lint --list-rules` says of a rule."""

    rule: Rule
    default: bool  # on unless deselected
    finds: str


RULE_INFO: tuple[RuleInfo, ...] = (
    RuleInfo(
        Rule.BAD_INPUT,
        True,
        "what makes a run fail (files that cannot be read or parsed, unknown images, cycles); "
        "always on",
    ),
    RuleInfo(
        Rule.UNDECLARED_DEPENDENCY,
        True,
        "an image used through image_tag that control's Depends does not name",
    ),
    RuleInfo(
        Rule.UNUSED_DEPENDENCY, True, "a Depends entry that no template uses through image_tag"
    ),
    RuleInfo(
        Rule.NON_NUMERIC_USER,
        True,
        "a final USER naming no uid (an error when force_numeric_user is set)",
    ),
    RuleInfo(Rule.MISSING_TEST, True, "an image without test.sh: built and published unverified"),
    RuleInfo(
        Rule.CHANGELOG_ORDER,
        False,
        "changelog entries whose versions do not grow from bottom to top (dated rebuilds "
        "such as 1.2-2-20260719 before 1.2-3 are common practice)",
    ),
)
DEFAULT_RULES = frozenset(info.rule for info in RULE_INFO if info.default)
ALL = "ALL"  # selects every rule


@attrs.frozen
class RuleChoice:
    """Rule codes as a user gave them, in ruff's manner: SELECT replaces the default set
    (None keeps it), EXTEND_SELECT adds, IGNORE removes."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


def _codes(names: Iterable[str], location: Location) -> frozenset[Rule] | Problem:
    """The rules NAMES give, or the problem with the first unknown one."""
    found: set[Rule] = set()
    for name in names:
        if name == ALL:
            found.update(Rule)
            continue
        try:
            found.add(Rule(name))
        except ValueError:
            known = ", ".join(r.value for r in Rule)
            return Problem(location, f"unknown lint rule {name!r} (rules: {known}, or {ALL})")
    return frozenset(found)


def chosen_rules(
    layers: Iterable[tuple[RuleChoice, Location]],
) -> frozenset[Rule]:
    """The rules LAYERS choose (the config's, then the command line's), each layer starting
    from the one below; raises DockerPkgError naming an unknown code or a rule that cannot be
    turned off."""
    rules = DEFAULT_RULES
    problems: list[Problem] = []
    for choice, location in layers:
        parts = []
        for names in (choice.select or (), choice.extend_select, choice.ignore):
            codes = _codes(names, location)
            if isinstance(codes, Problem):
                problems.append(codes)
                codes = frozenset()
            parts.append(codes)
        selected, extended, ignored = parts
        if Rule.BAD_INPUT in ignored:
            message = (
                f"lint rule {Rule.BAD_INPUT.value!r} cannot be ignored: it is what makes runs fail"
            )
            problems.append(Problem(location, message))
        rules = (selected if choice.select is not None else rules) | extended
        rules -= ignored
    if problems:
        raise DockerPkgError(problems)
    return rules | {Rule.BAD_INPUT}


def rules_text() -> str:
    """`lint --list-rules`: each rule, on or off by default, and what it finds."""
    width = max(len(r.value) for r in Rule)
    return "".join(
        f"{info.rule.value:<{width}}  {'on ' if info.default else 'off'}  {info.finds}\n"
        for info in RULE_INFO
    )


@attrs.frozen
class Finding:
    """One problem found, and the rule that found it."""

    rule: Rule
    problem: Problem

    @property
    def severity(self) -> Severity:
        return self.problem.severity

    def __str__(self) -> str:
        problem = self.problem
        return (
            f"{problem.location}: {problem.severity.value}: [{self.rule.value}] {problem.message}"
        )


@attrs.frozen
class _Context:
    """What the rules share: the labels image_tag resolves, and the tree's repositories."""

    config: Config
    known: KnownImages
    tree_repos: Mapping[str, str]  # repository -> tree image name
    rules: frozenset[Rule]

    def repository(self, spec: ImageSpec) -> str:
        return join_repository(self.config.registry, self.config.namespace, spec.name)


def _finding(rule: Rule, severity: Severity, location: Location, message: str) -> Finding:
    return Finding(rule, Problem(location, message, severity))


def _templates(spec: ImageSpec) -> list[tuple[str, str]]:
    """(path relative to the tree, text) of the image's templates, main one first."""
    found = [(spec.source.file("Dockerfile.template"), spec.source.template)]
    if spec.source.build_template is not None:
        found.append((spec.source.file("Dockerfile.build.template"), spec.source.build_template))
    return found


# `"name" | image_tag`: the constant names whose line a finding can point at.
_IMAGE_TAG_USE = re.compile(r"""(["'])([^"'\\{}]+)\1\s*\|\s*image_tag\b""")


def _use_location(spec: ImageSpec, repository: str, known: KnownImages) -> Location:
    """The template line using REPOSITORY through image_tag; the main template without a line
    when the name is computed or comes from an included file."""
    templates = _templates(spec)
    for where, text in templates:
        for number, line in enumerate(text.splitlines(), 1):
            if any(known.resolve(m[2]) == repository for m in _IMAGE_TAG_USE.finditer(line)):
                return Location(where, number)
    return Location(templates[0][0])


def _undeclared(spec: ImageSpec, rendered: Rendered | None, ctx: _Context) -> Iterator[Finding]:
    if rendered is None:
        return
    declared = {ctx.known.resolve(dep.name) for dep in spec.depends}
    own = ctx.repository(spec)
    for repository in rendered.used:
        if repository == own or repository not in ctx.tree_repos or repository in declared:
            continue
        parent = ctx.tree_repos[repository]
        yield _finding(
            Rule.UNDECLARED_DEPENDENCY,
            Severity.WARNING,
            _use_location(spec, repository, ctx.known),
            f"image '{spec.name}' uses '{parent}' through image_tag but its control file does "
            "not declare it (Depends); it is built first anyway",
        )


def _unused(spec: ImageSpec, rendered: Rendered | None, ctx: _Context) -> Iterator[Finding]:
    if rendered is None:
        return
    used = set(rendered.used)
    for dep in spec.depends:
        repository = ctx.known.resolve(dep.name)
        # Unknown images and self-dependencies are bad input, reported as such.
        if repository is None or repository == ctx.repository(spec) or repository in used:
            continue
        yield _finding(
            Rule.UNUSED_DEPENDENCY,
            Severity.WARNING,
            Location(spec.source.file("control"), dep.line),
            f"image '{spec.name}' declares '{dep.name}' but its templates never use it "
            "through image_tag",
        )


def _is_user_line(line: str) -> bool:
    return line.upper().startswith("USER ")


def _user(spec: ImageSpec, rendered: Rendered | None, ctx: _Context) -> Iterator[Finding]:
    if rendered is None or rendered.dockerfile is None:
        return
    user = non_numeric_user(rendered.dockerfile)
    if user is None:
        return
    where, text = _templates(spec)[0]
    # The template's last USER line is the Dockerfile's when they have as many USER lines;
    # otherwise an include or a loop made it, and only the file is named.
    ours = [n for n, line in enumerate(text.splitlines(), 1) if _is_user_line(line)]
    theirs = [line for line in rendered.dockerfile.splitlines() if _is_user_line(line)]
    line = ours[-1] if ours and len(ours) == len(theirs) else None
    strict = ctx.config.force_numeric_user
    yield _finding(
        Rule.NON_NUMERIC_USER,
        Severity.ERROR if strict else Severity.WARNING,
        Location(where, line),
        f"the final USER instruction '{user}' names no uid; use one (the uid filter gives it)"
        + (" as force_numeric_user requires" if strict else ""),
    )


def _missing_test(spec: ImageSpec, rendered: Rendered | None, ctx: _Context) -> Iterator[Finding]:
    if "test.sh" not in spec.source.names:
        yield _finding(
            Rule.MISSING_TEST,
            Severity.WARNING,
            Location(spec.path),
            f"image '{spec.name}' has no test.sh: it is built and published unverified",
        )


def _changelog_versions(spec: ImageSpec, findings: list[Finding]) -> list[tuple[int, str, Version]]:
    """Every entry's (line, version as written, version), newest first; what cannot be read
    is a bad-input finding added to FINDINGS (and ends the list)."""
    where = spec.source.file("changelog")
    text = spec.source.changelog
    try:
        blocks = list(Changelog(text, strict=True))
    except (ChangelogParseError, ValueError) as exc:
        detail = str(exc).removeprefix("Could not parse changelog: ")
        line = _first_bad_line(text, str(exc))
        message = f"cannot parse changelog: {detail}"
        findings.append(_finding(Rule.BAD_INPUT, Severity.ERROR, Location(where, line), message))
        return []
    # Each entry's heading and its line: python-debian found them with this same pattern.
    # It stops at a line in an old changelog format and keeps the rest as text, unread; so
    # do we.
    headings = [
        (number, match[2])
        for number, line in enumerate(text.splitlines(), 1)
        if (match := topline.match(line))
    ][: len(blocks)]
    versions: list[tuple[int, str, Version]] = []
    for line, raw in headings:
        try:
            versions.append((line, raw, parse_version(raw)))
        except VersionError as exc:
            message = f"cannot parse changelog: {exc}"
            findings.append(
                _finding(Rule.BAD_INPUT, Severity.ERROR, Location(where, line), message)
            )
            break
    return versions


def _changelog(spec: ImageSpec, rendered: Rendered | None, ctx: _Context) -> Iterator[Finding]:
    """The whole changelog parses (bad input otherwise); with changelog-order selected, each
    version is greater than the one below it."""
    found: list[Finding] = []
    versions = _changelog_versions(spec, found)
    yield from found
    if found or Rule.CHANGELOG_ORDER not in ctx.rules:
        return
    where = spec.source.file("changelog")
    for (line, newer, newer_version), (_, older, older_version) in itertools.pairwise(versions):
        if newer_version > older_version:
            continue
        how = "the same as" if newer_version == older_version else "lower than"
        yield _finding(
            Rule.CHANGELOG_ORDER,
            Severity.WARNING,
            Location(where, line),
            f"entry {newer} is {how} the older entry {older} below it; versions must grow "
            "from bottom to top for Debian tools, while dockerpkg only needs `update --version` "
            "to be greater than the top entry",
        )


# The rules run on every image whose changelog and control parse (the template need not
# render: rules needing it skip the image, whose template error is reported instead).
RuleCheck = Callable[[ImageSpec, Rendered | None, _Context], Iterable[Finding]]
CHECKS: Mapping[Rule, RuleCheck] = {
    Rule.UNDECLARED_DEPENDENCY: _undeclared,
    Rule.UNUSED_DEPENDENCY: _unused,
    Rule.NON_NUMERIC_USER: _user,
    Rule.MISSING_TEST: _missing_test,
    Rule.BAD_INPUT: _changelog,  # changelog-order's comparisons are made there, if selected
}


def lint_tree(
    snapshot: Snapshot,
    config: Config,
    *,
    directory: str = ".",
    extra: Iterable[Problem] = (),
    rules: frozenset[Rule] = DEFAULT_RULES,
    analysis: Analysis | None = None,
) -> tuple[Finding, ...]:
    """Every finding of RULES for the tree (DIRECTORY names it in messages); EXTRA problems
    (the config's warnings, say) are reported as bad input. ANALYSIS: the caller's
    `lint_analysis` of the same snapshot and config, so that a caller that also needs the
    rendered Dockerfiles renders the tree once."""
    if analysis is None:
        analysis = lint_analysis(snapshot, config)
    known = known_images(list(analysis.specs), config, "")
    tree_repos = {
        join_repository(config.registry, config.namespace, s.name): s.name for s in analysis.specs
    }
    ctx = _Context(
        config=config, known=known, tree_repos=tree_repos, rules=rules | {Rule.BAD_INPUT}
    )
    findings: list[Finding] = []
    # The tree's own undeclared-dependency warnings: the rule reports them with the line.
    replaced: set[Problem] = set()
    for spec in analysis.specs:
        rendered = analysis.rendered.get(spec.path)
        for rule, check in CHECKS.items():
            if rule in ctx.rules:
                findings.extend(check(spec, rendered, ctx))
        if rendered is not None:
            replaced.update(
                undeclared_warning(spec, tree_repos[r])
                for r in rendered.used
                if r in tree_repos and tree_repos[r] != spec.name
            )
    problems = [*extra, *(p for p in analysis.problems if p not in replaced)]
    if not snapshot.images:
        message = "no images here: no folder holds both a Dockerfile.template and a changelog"
        problems.append(Problem(Location(directory), message))
    findings += [Finding(Rule.BAD_INPUT, p) for p in problems]
    return tuple(sorted(findings, key=_sort_key))


def lint_analysis(snapshot: Snapshot, config: Config) -> Analysis:
    """The tree as lint reads it: rendered without force_numeric_user, so that the USER rule
    reports every image (as an error when the config asks for numeric users)."""
    return analyze_tree(snapshot, attrs.evolve(config, force_numeric_user=False))


def _sort_key(finding: Finding) -> tuple[str, int, str, str]:
    location = finding.problem.location
    return (location.path, location.line or 0, finding.rule.value, finding.problem.message)


def strictly(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """--strict: every warning an error."""
    return tuple(
        attrs.evolve(f, problem=attrs.evolve(f.problem, severity=Severity.ERROR)) for f in findings
    )


def count(findings: Iterable[Finding], severity: Severity) -> int:
    return sum(1 for f in findings if f.severity is severity)


def _summary(findings: Sequence[Finding]) -> str:
    if not findings:
        return "lint: no problems found"
    errors, warnings = count(findings, Severity.ERROR), count(findings, Severity.WARNING)
    return f"lint: {errors} error(s), {warnings} warning(s)"


def findings_text(findings: Sequence[Finding]) -> str:
    """One line per finding, `FILE[:LINE]: SEVERITY: [RULE] MESSAGE`, then a summary."""
    return "".join(f"{f}\n" for f in findings) + _summary(findings) + "\n"


def findings_json(findings: Sequence[Finding]) -> str:
    """The findings as one JSON document (keys sorted), with the counts."""
    data = {
        "findings": [
            {
                "rule": f.rule.value,
                "severity": f.severity.value,
                "file": f.problem.location.path,
                "line": f.problem.location.line,
                "message": f.problem.message,
            }
            for f in findings
        ],
        "errors": count(findings, Severity.ERROR),
        "warnings": count(findings, Severity.WARNING),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
