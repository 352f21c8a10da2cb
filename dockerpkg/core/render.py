"""Render one image's Dockerfile template with docker-pkg's filters.

A fresh sandboxed Jinja environment per call (templates are untrusted: CI plans merge
requests), loading only the image's own files; filters close over their inputs, so there is
no shared state between renders. The usual template, whose only Jinja is `image_tag` of a
constant and plain variables, is rendered from Jinja's own tokens instead of being compiled:
the same text, at a twentieth of the cost (see `_direct`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
from debian.debian_support import BaseVersion

from dockerpkg.core.config import Config
from dockerpkg.core.labels import join_repository, split_label
from dockerpkg.errors import DockerPkgError, Problem, error, warning


class FilterError(Exception):
    """A filter refused its input; the message is for the user."""


@attrs.frozen
class KnownImages:
    """Every label `image_tag` can resolve: repository -> full label, and which are base images."""

    labels: Mapping[str, str]
    base: frozenset[str]
    registry: str | None
    namespace: str | None

    def resolve(self, name: str) -> str | None:
        """The repository NAME means, trying docker-pkg's key first, then what users mean."""
        candidates = (
            join_repository(self.registry, self.namespace, name),
            name,
            join_repository(self.registry, name),
        )
        for repository in candidates:
            if repository in self.labels:
                return repository
        short = [repo for repo in self.base if repo.rsplit("/", 1)[-1] == name]
        return short[0] if len(short) == 1 else None

    def lookup(self, name: str) -> str:
        """The repository of NAME, or FilterError worded for the user."""
        repository = self.resolve(name)
        if repository is None:
            looked = join_repository(self.registry, self.namespace, name)
            raise FilterError(
                f"image_tag: unknown image '{name}' (looked up as {looked}); it is neither "
                "in the tree nor in base_images"
            )
        return repository


@attrs.frozen
class Rendered:
    """A rendered Dockerfile and the repositories the template looked up with image_tag."""

    dockerfile: str | None  # None: only the image_tag lookups were read, nothing rendered
    used: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()


def apt_install(packages: str, config: Config) -> str:
    """docker-pkg's apt_install stanza, byte for byte (its spacing is part of the contract)."""
    opts = config.apt_options or ""
    packages = packages.replace("\n", " ")
    body = (
        f"apt-get update {opts} \\\n"
        "    && DEBIAN_FRONTEND=noninteractive \\\n"
        f"    apt-get install {opts} --yes {packages} --no-install-recommends \\\n"
    )
    clean = "    && apt-get clean && rm -rf /var/lib/apt/lists/* "
    proxy = config.apt_only_proxy
    if not proxy:
        return body + clean
    return (
        f"echo 'Acquire::http::Proxy \"{proxy}\";' > /etc/apt/apt.conf.d/80_proxy \\\n"
        f"    && {body}"
        "    && rm -f /etc/apt/apt.conf.d/80_proxy \\\n" + clean
    )


def apt_remove(packages: str, config: Config) -> str:
    """docker-pkg's apt_remove stanza, byte for byte, including its fused proxy line."""
    body = (
        f"apt-get update && DEBIAN_FRONTEND=noninteractive apt-get remove --yes --purge {packages}"
        " \\\n"
    )
    clean = "    && apt-get clean && rm -rf /var/lib/apt/lists/* "
    proxy = config.apt_only_proxy
    if not proxy:
        return body + clean
    return (
        f"echo 'Acquire::http::Proxy \"{proxy}\";' > /etc/apt/apt.conf.d/80_proxy  && \\"
        + body
        + "    && rm -f /etc/apt/apt.conf.d/80_proxy \\\n"
        + clean
    )


def upstream_version(label: str) -> str:
    """The upstream part of a label's tag (first two '-' parts, Debian revision dropped)."""
    _, tag = split_label(label)
    if tag is None:
        raise FilterError(f"upstream_version: '{label}' has no tag")
    if "-" not in tag:
        return tag
    return str(BaseVersion("-".join(tag.split("-")[:2])).upstream_version)


def _add_user(user: str, mappings: Mapping[str, int]) -> str:
    if user not in mappings:
        raise FilterError(f"add_user: no uid is known for user '{user}' (known_uid_mappings)")
    uid = mappings[user]
    return (
        f"groupadd -o -g {uid} -r {user} && "
        f"useradd -l -o -r -m -d /var/lib/{user} -g {user} -u {uid} {user}"
    )


class IncludeError(Exception):
    """An include or import the image folder cannot satisfy; the message is for the user."""


def _place(exc: BaseException, loaded: Collection[str]) -> tuple[str | None, int | None]:
    """The template (a name the loader gave out) and line an error happened at: Jinja rewrites
    tracebacks so template frames carry the template's own name and line numbers."""
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.name, exc.lineno
    name = line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in loaded:
            name, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return name, line


def _folder_path(name: str) -> str:
    """NAME as a path inside the image folder, or IncludeError when it leads out of it."""
    normal = posixpath.normpath(name)
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise IncludeError(
            f"cannot include or import '{name}': it is outside the image folder (a template "
            "can use files of its own image folder only)"
        )
    return normal


# `{{ "name" | image_tag }}`, optionally followed by more filters: by far the usual form.
_SIMPLE_IMAGE_TAG = re.compile(
    r"""\{\{-?\s*(["'])([^"'\\{}]+)\1\s*\|\s*image_tag\s*(?:\|\s*\w+\s*)*-?\}\}"""
)


def _quick_image_tags(text: str) -> tuple[str, ...] | None:
    """The names, when every use of image_tag is the simple form and nothing could hide one
    (comments, raw blocks, includes); else None, and the template is parsed instead."""
    if "{#" in text or "raw" in text or "include" in text or "import" in text:
        return None
    found = _SIMPLE_IMAGE_TAG.findall(text)
    if len(found) != text.count("image_tag"):
        return None
    return tuple(dict.fromkeys(name for _, name in found))


def static_image_tags(text: str) -> tuple[str, ...] | None:
    """The names a template passes to image_tag, read from its syntax tree without rendering.

    None when that cannot be known without rendering: a computed name, an include (the
    included file may use image_tag), or a syntax error (rendering reports it properly).
    """
    if "image_tag" not in text:
        return ()
    quick = _quick_image_tags(text)
    if quick is not None:
        return quick
    # Jinja is loaded on first need: runs that read simple templates only never need it.
    import jinja2
    from jinja2 import nodes

    env = jinja2.Environment(extensions=["jinja2.ext.do"])  # noqa: S701 (parse only)
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError:
        return None
    if any(
        True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))
    ):
        return None
    names = []
    for node in tree.find_all(nodes.Filter):
        if node.name != "image_tag":
            continue
        if not isinstance(node.node, nodes.Const) or not isinstance(node.node.value, str):
            return None
        names.append(node.node.value)
    return tuple(dict.fromkeys(names))


# Names Jinja's parser reads as constants, never as variables.
_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})


def _direct(
    lexer: Any,
    text: str,
    config: Config,
    known: KnownImages,
    extra: Mapping[str, str] | None = None,
) -> tuple[str, list[str]] | None:
    """TEXT rendered from its tokens, without compiling it, when its only Jinja is
    `{{ "name" | image_tag }}` and `{{ variable }}` (besides comments and whitespace control):
    the usual template, where Jinja's parsing and compiling cost twenty times its lexing.
    Jinja's own lexer splits the text, so newlines, whitespace control and the trailing
    newline come out as Jinja renders them; None for anything else, or anything that fails
    (an unknown image, an undefined variable), which Jinja then renders or reports itself."""
    from jinja2 import TemplateSyntaxError

    try:
        tokens = [(token.type, token.value) for token in lexer.tokenize(text)]
    except TemplateSyntaxError:
        return None
    variables: dict[str, Any] | None = None
    parts: list[str] = []
    used: list[str] = []
    at = 0
    while at < len(tokens):
        kind, value = tokens[at]
        if kind == "data":
            parts.append(value)
            at += 1
            continue
        shape = tuple(kind for kind, _ in tokens[at : at + 6])
        if shape[:5] == ("variable_begin", "string", "pipe", "name", "variable_end"):
            if tokens[at + 3][1] != "image_tag":
                return None
            repository = known.resolve(str(tokens[at + 1][1]))
            if repository is None:
                return None
            used.append(repository)
            parts.append(known.labels[repository])
            at += 5
        elif shape[:3] == ("variable_begin", "name", "variable_end"):
            name = tokens[at + 1][1]
            if variables is None:
                variables = {**config.template_variables(), **(extra or {})}
            if name in _CONSTANTS or name not in variables:
                return None
            parts.append(str(variables[name]))
            at += 3
        else:
            return None
    return "".join(parts), used


_NUMERIC_USER = re.compile(r"USER\s+\d+(:\d+)?")


def non_numeric_user(dockerfile: str) -> str | None:
    """The last USER instruction of a Dockerfile when it names no uid (else None)."""
    users = [line for line in dockerfile.splitlines() if line.upper().startswith("USER ")]
    if users and not _NUMERIC_USER.fullmatch(users[-1].strip()):
        return users[-1].strip()
    return None


def check_numeric_user(dockerfile: str) -> str | None:
    """With force_numeric_user, the last USER line must name a uid; returns the problem."""
    if user := non_numeric_user(dockerfile):
        return f"last USER instruction '{user}' is not numeric (force_numeric_user)"
    return None


# What one operation of a template may make: far beyond any Dockerfile, far below what would
# exhaust memory. Jinja's sandbox itself limits range() to 100,000 items.
MAX_SIZE = 1_000_000
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = ("center", "indent", "wordwrap", "truncate")


def sandbox(**options: Any) -> Any:
    """A Jinja environment in which templates cannot run code, read the environment or exhaust
    memory: Jinja's sandbox (no `__globals__`, `__class__`, `__subclasses__`, `mro` and the
    like, safe `str.format`, ranges of at most 100,000 items), with `*`, `**` and the width
    arguments of str methods and filters capped at MAX_SIZE. Lists a template makes stay
    mutable: docker-pkg's `do` extension exists to append to them."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import SandboxedEnvironment

    class Sandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 1000:
                raise SecurityError(f"the power {right} is too large (at most 1000)")
            if operator == "*":
                for count, other in ((left, right), (right, left)):
                    size = len(other) if isinstance(other, str | list | tuple) else 0
                    if isinstance(count, int) and size and count * size > MAX_SIZE:
                        raise SecurityError(
                            f"repeating a value of length {size} {count} times makes more "
                            f"than {MAX_SIZE:,} items"
                        )
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            name = getattr(__obj, "__name__", "")
            if isinstance(getattr(__obj, "__self__", None), str) and name in _WIDTH_METHODS:
                _check_widths(name, args, kwargs)
            return super().call(__context, __obj, *args, **kwargs)

    env = Sandbox(
        undefined=StrictUndefined,
        extensions=["jinja2.ext.do"],
        **options,
    )
    for name in _WIDTH_FILTERS:
        env.filters[name] = _capped(name, env.filters[name])
    return env


def _check_widths(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    from jinja2.exceptions import SecurityError

    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SIZE:
            raise SecurityError(f"{name}: a width of {value} is too large (at most {MAX_SIZE:,})")


def _capped(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """FUNCTION (a filter) refusing width arguments over MAX_SIZE."""

    def filter_(*args: Any, **kwargs: Any) -> Any:
        _check_widths(name, args[1:], kwargs)
        return function(*args, **kwargs)

    # Jinja passes the environment or context to filters marked so; keep the marks.
    filter_.__dict__.update(getattr(function, "__dict__", {}))
    return filter_


def _template_error(exc: Exception) -> str:
    """What went wrong in a template, in the user's words."""
    import jinja2

    words: list[tuple[type[BaseException] | tuple[type[BaseException], ...], Any]] = [
        (jinja2.TemplateSyntaxError, lambda e: f"template syntax: {e.message}"),
        (jinja2.TemplateNotFound, lambda e: f"include '{e.name}' not found in the image folder"),
        (jinja2.UndefinedError, lambda e: f"undefined variable: {e.message}"),
        ((FilterError, IncludeError), str),
        # OverflowError: range() past what Python can count
        (
            (jinja2.exceptions.SecurityError, OverflowError),
            lambda e: f"refused by the template sandbox: {e}",
        ),
        (RecursionError, lambda e: "templates include each other without end"),
    ]
    for kinds, word in words:
        if isinstance(exc, kinds):
            return str(word(exc))
    return f"template error: {type(exc).__name__}: {exc}"


def render_template(
    text: str,
    files: Mapping[str, str],
    config: Config,
    known: KnownImages,
    *,
    where: str,
    names: Collection[str] = (),
    variables: Mapping[str, str] | None = None,
) -> Rendered:
    """Render TEXT, the template at WHERE (a path relative to the tree), with FILES (the text
    files of its folder) to include; NAMES are all the folder's files, text or not.

    Every failure becomes a Problem at the template (WHERE, or the included file) and line.
    VARIABLES are given besides the config's (a platform's, when the tree has platforms).
    """
    extra = variables or {}
    import jinja2

    # The sandbox's lexer is Jinja's default one: only lexing, so no sandbox is needed yet.
    direct = _direct(jinja2.Environment().lexer, text, config, known, extra)  # noqa: S701
    if direct is not None:
        return _checked(*direct, (), where, config)
    used: list[str] = []
    notes: list[Problem] = []
    folder, _, main = where.rpartition("/")
    sources = {**files, main: text}
    loaded: set[str] = set()

    def at(name: str | None) -> str:
        """A template of the folder, as a path relative to the tree."""
        if name is None or name == main:
            return where
        return f"{folder}/{name}" if folder else name

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        path = _folder_path(name)
        if path not in sources:
            if path in names:
                raise IncludeError(
                    f"cannot include or import '{name}': not a UTF-8 text file of at most 256 KiB"
                )
            return None
        loaded.add(path)
        return sources[path], path, lambda: True

    def image_tag(name: str) -> str:
        repository = known.lookup(str(name))
        used.append(repository)
        return known.labels[repository]

    def uid(user: str) -> str:
        if user in config.known_uid_mappings:
            return str(config.known_uid_mappings[user])
        notes.append(warning(where, f"uid: no uid is known for user '{user}', left as is"))
        return str(user)

    filters: dict[str, Callable[..., Any]] = {
        "image_tag": image_tag,
        "upstream_version": upstream_version,
        "apt_install": lambda packages: apt_install(str(packages), config),
        "apt_remove": lambda packages: apt_remove(str(packages), config),
        "uid": uid,
        "add_user": lambda user: _add_user(str(user), config.known_uid_mappings),
    }
    env = sandbox(loader=jinja2.FunctionLoader(load))
    env.filters.update(filters)

    def fail(message: str, exc: BaseException) -> DockerPkgError:
        name, line = _place(exc, loaded)
        if name is not None and name != main:
            message += f" (included from {where})"
        return DockerPkgError([error(at(name), message, line)])

    try:
        dockerfile = env.get_template(main).render({**config.template_variables(), **extra})
    except Exception as exc:  # noqa: BLE001 (any template error is the user's, at its line)
        raise fail(_template_error(exc), exc) from None
    return _checked(dockerfile, used, tuple(notes), where, config)


def _checked(
    dockerfile: str, used: list[str], notes: tuple[Problem, ...], where: str, config: Config
) -> Rendered:
    """A rendered Dockerfile, refused when blank or (force_numeric_user) its user is named."""
    if not dockerfile.strip():
        raise DockerPkgError([error(where, "renders to nothing: the result is empty or blank")])
    if config.force_numeric_user and (problem := check_numeric_user(dockerfile)):
        raise DockerPkgError([error(where, problem)])
    return Rendered(dockerfile=dockerfile, used=tuple(dict.fromkeys(used)), warnings=notes)
