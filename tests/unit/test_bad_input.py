"""Broken trees and configs: each is refused with exit 1, no traceback, a message naming the
file relative to the tree (and the line, where the input has lines), and every file as it was.

Each case breaks the valid work folder of tests/support/badinput.py in one way and runs the real
CLI in-process. The inputs users are entitled to have accepted are checked to keep working.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from dockerpkg.cli import main
from dockerpkg.effects.buildcontext import build_context as _context
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.tasks import TaskFailedError
from tests.support.badinput import changelog, fingerprint, write, write_image, write_work

POLICY = LinkPolicy.for_tree
Builder = Callable[[Path], object]  # gets the work folder (also the current folder)
PLAN = ("plan", "--offline", "images")
# `path[:line]: error|warning: message`, the one shape of every problem line.
PROBLEM_LINE = re.compile(r"[^\s:]+(:\d+)?: (error|warning): \S.*")
# The count of warnings about the tree's style, which `lint` lists.
STYLE_LINE = re.compile(r"\d+ warnings? about the tree: dockerpkg lint \S+ lists them .*")
SUMMARY_LINE = re.compile(r"dockerpkg: \d+ error\(s\); nothing was changed")


@attrs.frozen
class Case:
    """One way to break the work folder, what to run, and the start of the expected line."""

    id: str
    build: Builder
    expect: str
    argv: tuple[str, ...] = PLAN
    env: tuple[tuple[str, str], ...] = ()  # set for the run


# --- ways to break the work folder ---------------------------------------------------------------


def put(relative: str, content: str | bytes) -> Builder:
    """Write a file of the tree (creating its folder)."""
    return lambda work: write(work / "images" / relative, content)


def config(content: str | bytes) -> Builder:
    return lambda work: write(work / "config.yaml", content)


def folder_instead(relative: str) -> Builder:
    """A folder (holding a file) where the file RELATIVE should be."""

    def build(work: Path) -> None:
        path = work / "images" / relative
        path.unlink()
        write(path / "inside", "x\n")

    return build


def link(relative: str, target: str) -> Builder:
    return lambda work: os.symlink(target, work / "images" / relative)


def fifo(relative: str) -> Builder:
    def build(work: Path) -> None:
        path = work / "images" / relative
        if path.exists():
            path.unlink()
        os.mkfifo(path)

    return build


def chain(*builders: Builder) -> Builder:
    def build(work: Path) -> None:
        for builder in builders:
            builder(work)

    return build


def images(*names: str, depends: dict[str, str] | None = None) -> Builder:
    """Replace the tree by images NAMES (FROM scratch), with control Depends from DEPENDS."""

    def build(work: Path) -> None:
        shutil.rmtree(work / "images")
        for name in names:
            deps = (depends or {}).get(name)
            write_image(work / "images", name, "FROM scratch\n", (deps,) if deps else ())

    return build


def run_cli(*argv: str) -> Builder:
    """Run dockerpkg as part of the setup (making a plan to go stale, say)."""

    def build(work: Path) -> None:
        assert main(list(argv)) == 0

    return build


def template(text: str | bytes, image: str = "base") -> Builder:
    return put(f"{image}/Dockerfile.template", text)


def control(text: str | bytes, image: str = "app") -> Builder:
    return put(f"{image}/control", text)


def bad_type(key: str, value: str) -> Case:
    return Case(
        f"config-{key}-{value}",
        config(f"site: test\n{key}: {value}\n"),
        f"config.yaml:2: error: bad value for '{key}'",
    )


CL_BODY = (
    "\n\n  * Initial release.\n\n -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
)

CASES = [
    # -- changelogs ------------------------------------------------------------------------------
    Case(
        "changelog-empty",
        put("base/changelog", ""),
        "base/changelog: error: the changelog is empty",
    ),
    Case(
        "changelog-blank",
        put("base/changelog", "\n \n"),
        "base/changelog: error: the changelog is empty",
    ),
    Case(
        "changelog-not-a-changelog",
        put("base/changelog", "Version 1.0, released today\n"),
        "base/changelog:1: error: cannot parse changelog",
    ),
    Case(
        "changelog-invalid-version",
        put("base/changelog", "base (a:b:c!) wikimedia; urgency=medium" + CL_BODY),
        "base/changelog:1: error: cannot parse changelog: Invalid version string 'a:b:c!'",
    ),
    Case(
        "changelog-no-trailer",
        put("base/changelog", "base (1.0) wikimedia; urgency=medium\n\n  * x\n"),
        "base/changelog:3: error: cannot parse changelog",
    ),
    Case(
        "changelog-bad-trailer",
        put("base/changelog", changelog("base").replace("Mon, 02 Mar 2026", "yesterday")),
        "base/changelog:5: error: cannot parse changelog",
    ),
    Case(
        "changelog-invalid-utf8",
        put("base/changelog", changelog("base").encode().replace(b"Initial", b"Initi\xe9l")),
        "base/changelog:3: error: not UTF-8 text (byte 0xe9)",
    ),
    Case(
        "changelog-folder",
        folder_instead("base/changelog"),
        "base/changelog: error: is a folder, not a file",
    ),
    Case("changelog-fifo", fifo("base/changelog"), "base/changelog: error: is not a regular file"),
    Case(
        "changelog-dangling-link",
        chain(
            lambda w: (w / "images/base/changelog").unlink(),
            link("base/changelog", "old-changelog"),
        ),
        "base/changelog: error: symlink to missing 'old-changelog'",
    ),
    Case(
        "changelog-same-image-twice",
        put("tools/changelog", changelog("app")),
        "tools/changelog:1: error: image 'app' is also defined in app/changelog",
    ),
    # -- control files -----------------------------------------------------------------------------
    Case(
        "control-malformed-field",
        control("Package app\nDepends: base\n"),
        "app/control:1: error: malformed line 'Package app'",
    ),
    Case(
        "control-continuation-first",
        control("  base\nPackage: app\n"),
        "app/control:1: error: continuation line without a field above it",
    ),
    Case(
        "control-field-twice",
        control("Package: app\nDepends: base\nDepends: tools\n"),
        "app/control:3: error: field Depends given twice (first at line 2)",
    ),
    Case(
        "control-bad-relation",
        control("Package: app\nDepends: base (>> \n"),
        "app/control:2: error: Depends: cannot read 'base (>>'",
    ),
    Case(
        "control-architecture",
        control("Package: app\nBuild-Depends: base [amd64]\n"),
        "app/control:2: error: Build-Depends: cannot read 'base [amd64]'",
    ),
    Case(
        "control-invalid-utf8",
        control(b"Package: app\nDescription: caf\xe9\nDepends: base\n"),
        "app/control:2: error: not UTF-8 text (byte 0xe9)",
    ),
    Case(
        "control-folder",
        folder_instead("app/control"),
        "app/control: error: is a folder, not a file",
    ),
    Case(
        "control-unknown-dependency",
        control("Package: app\nDepends: base, ghost\n"),
        "app/control:2: error: image 'app' depends on 'ghost', which is neither in the tree "
        "nor in base_images",
    ),
    Case(
        "control-unknown-on-continuation",
        control("Package: app\nDepends: base,\n  ghost (>= 1)\n"),
        "app/control:3: error: image 'app' depends on 'ghost'",
    ),
    Case(
        "control-self-dependency",
        control("Package: app\nDepends: base, app\n"),
        "app/control:2: error: image 'app' depends on itself",
    ),
    Case(
        "control-alternatives",
        control("Package: app\nDepends: base | tools\n"),
        "app/control:2: error: Depends: alternatives ('base | tools') are not supported",
    ),
    Case(
        "control-build-depends-alternatives",
        control("Package: app\nBuild-Depends: tools,\n base|tools\n"),
        "app/control:3: error: Build-Depends: alternatives ('base|tools') are not supported",
    ),
    Case(
        "cycle-of-1",
        control("Package: base\nDepends: base\n", "base"),
        "base/control:2: error: image 'base' depends on itself",
    ),
    Case(
        "cycle-of-2",
        images("a", "b", depends={"a": "b", "b": "a"}),
        "a/control:2: error: dependency cycle: a -> b -> a",
    ),
    Case(
        "cycle-of-5",
        images("e", "d", "c", "b", "a", depends={"a": "b", "b": "c", "c": "d", "d": "e", "e": "a"}),
        "a/control:2: error: dependency cycle: a -> b -> c -> d -> e -> a",
    ),
    Case(
        "cycle-through-image-tag",
        template("FROM {{ 'app' | image_tag }}\n"),
        "app/control:2: error: dependency cycle: app -> base -> app",
    ),
    Case(
        "cycle-only-through-image-tag",
        chain(
            template("FROM {{ 'app' | image_tag }}\n"),
            lambda w: (w / "images/app/control").unlink(),
        ),
        "app/Dockerfile.template: error: dependency cycle: app -> base -> app ('base' is "
        "used through image_tag)",
    ),
    Case(
        "same-image-in-two-folders",
        chain(
            put("copy/Dockerfile.template", "FROM scratch\n"),
            put("copy/changelog", changelog("base")),
        ),
        "copy/changelog:1: error: image 'base' is also defined in base/changelog",
    ),
    # -- templates ---------------------------------------------------------------------------------
    Case(
        "template-syntax",
        template("FROM scratch\nRUN true\n{% if registry %\n"),
        "base/Dockerfile.template:3: error: template syntax: unexpected 'end of template'",
    ),
    Case(
        "template-unclosed-if",
        template("FROM scratch\n{% if registry %}\nRUN true\n"),
        "base/Dockerfile.template:2: error: template syntax: Unexpected end of template",
    ),
    Case(
        "template-unclosed-for",
        template("FROM scratch\n\n{% for x in base_images %}\nRUN true\n"),
        "base/Dockerfile.template:3: error: template syntax: Unexpected end of template",
    ),
    Case(
        "template-undefined-variable",
        template("FROM scratch\n\nRUN {{ nope }}\n"),
        "base/Dockerfile.template:3: error: undefined variable: 'nope' is undefined",
    ),
    Case(
        "template-undefined-attribute",
        template("FROM scratch\nRUN {{ known_uid_mappings.nobody.id }}\n"),
        "base/Dockerfile.template:2: error: undefined variable",
    ),
    Case(
        "template-unknown-image",
        template("FROM scratch\n\nFROM {{ 'ghost' | image_tag }}\n", "app"),
        "app/Dockerfile.template:3: error: image_tag: unknown image 'ghost'",
    ),
    Case(
        "template-unknown-computed-image",
        template("FROM scratch\n{% set n = 'gh' ~ 'ost' %}\nFROM {{ n | image_tag }}\n"),
        "base/Dockerfile.template:3: error: image_tag: unknown image 'ghost'",
    ),
    Case(
        "template-unknown-user",
        template("FROM scratch\nRUN {{ 'bob' | add_user }}\n"),
        "base/Dockerfile.template:2: error: add_user: no uid is known for user 'bob'",
    ),
    Case(
        "template-include-outside",
        template("FROM scratch\n{% include '../app/Dockerfile.template' %}\n"),
        "base/Dockerfile.template:2: error: cannot include or import "
        "'../app/Dockerfile.template': it is outside the image folder",
    ),
    Case(
        "template-include-absolute",
        template("FROM scratch\n\n{% include '/etc/hostname' %}\n"),
        "base/Dockerfile.template:3: error: cannot include or import '/etc/hostname': it is "
        "outside the image folder",
    ),
    Case(
        "template-import-outside",
        template("{% import '../../config.yaml' as c %}\nFROM scratch\n"),
        "base/Dockerfile.template:1: error: cannot include or import '../../config.yaml': it "
        "is outside the image folder",
    ),
    Case(
        "template-from-import-outside",
        template("FROM scratch\n{% from 'sub/../../app/x' import y %}\n"),
        "base/Dockerfile.template:2: error: cannot include or import 'sub/../../app/x': it "
        "is outside the image folder",
    ),
    Case(
        "template-include-missing",
        template("FROM scratch\n{% include 'nope.txt' %}\n"),
        "base/Dockerfile.template:2: error: include 'nope.txt' not found in the image folder",
    ),
    Case(
        "template-include-binary",
        chain(
            put("base/blob.bin", b"\x00\xff\xfe"),
            template("FROM scratch\n{% include 'blob.bin' %}\n"),
        ),
        "base/Dockerfile.template:2: error: cannot include or import 'blob.bin': not a UTF-8 "
        "text file",
    ),
    Case(
        "template-error-in-included-file",
        chain(
            put("base/steps/run.txt", "RUN true\nRUN {{ nope }}\n"),
            template("FROM scratch\n{% include 'steps/run.txt' %}\n"),
        ),
        "base/steps/run.txt:2: error: undefined variable: 'nope' is undefined (included from "
        "base/Dockerfile.template)",
    ),
    Case(
        "template-syntax-in-included-file",
        chain(
            put("base/run.txt", "{% endif %}\n"),
            template("FROM scratch\n{% include 'run.txt' %}\n"),
        ),
        "base/run.txt:1: error: template syntax",
    ),
    Case(
        "template-includes-itself",
        template("FROM scratch\n{% include 'Dockerfile.template' %}\n"),
        "base/Dockerfile.template:2: error: templates include each other without end",
    ),
    Case(
        "template-invalid-utf8",
        template(b"FROM scratch\nRUN echo \xff\n"),
        "base/Dockerfile.template:2: error: not UTF-8 text (byte 0xff)",
    ),
    Case(
        "template-folder",
        folder_instead("base/Dockerfile.template"),
        "base/Dockerfile.template: error: is a folder, not a file",
    ),
    Case(
        "template-renders-to-whitespace",
        template("\n  \n\t\n"),
        "base/Dockerfile.template: error: renders to nothing",
    ),
    Case(
        "template-renders-to-nothing",
        template("{% if false %}FROM scratch{% endif %}\n"),
        "base/Dockerfile.template: error: renders to nothing",
    ),
    Case(
        "build-template-renders-to-nothing",
        put("base/Dockerfile.build.template", "{# nothing #}\n"),
        "base/Dockerfile.build.template: error: renders to nothing",
    ),
    Case(
        "build-template-undefined-variable",
        put("app/Dockerfile.build.template", "FROM scratch\nRUN mkdir /build\nRUN {{ nope }}\n"),
        "app/Dockerfile.build.template:3: error: undefined variable: 'nope' is undefined",
    ),
    Case(
        "build-template-unknown-image",
        put(
            "app/Dockerfile.build.template",
            "FROM scratch\nCOPY --from={{ 'ghost' | image_tag }} /a /b\n",
        ),
        "app/Dockerfile.build.template:2: error: image_tag: unknown image 'ghost'",
    ),
    Case(
        "build-template-syntax-error",
        put("app/Dockerfile.build.template", "FROM scratch\n{% if %}\n"),
        "app/Dockerfile.build.template:2: error: template syntax: Expected an expression",
    ),
    Case(
        "build-stage-named-like-an-image",
        chain(
            put("app/Dockerfile.build.template", "FROM scratch\n"),
            put("app-build/Dockerfile.template", "FROM scratch\n"),
            put("app-build/changelog", changelog("app-build")),
        ),
        "app/Dockerfile.build.template: error: the build stage of 'app' would be tagged "
        "registry.example.org/team/app-build, the name of image "
        "registry.example.org/team/app-build:1.0",
    ),
    Case(
        "template-runtime-error",
        template("FROM scratch\nRUN {{ 1 // 0 }}\n"),
        "base/Dockerfile.template:2: error: template error: ZeroDivisionError",
    ),
    # -- configs ---------------------------------------------------------------------------------
    Case(
        "config-missing",
        lambda w: None,
        "missing.yaml: error: config file not found",
        ("-c", "missing.yaml", *PLAN),
    ),
    Case(
        "config-folder",
        lambda w: (w / "conf.d").mkdir(),
        "conf.d: error: is a folder, not a config file",
        ("-c", "conf.d", *PLAN),
    ),
    Case(
        "config-not-yaml", config("registry: [unclosed\n"), "config.yaml:2: error: not valid YAML"
    ),
    Case(
        "config-tab", config("registry:\tr.example.org\n"), "config.yaml:1: error: not valid YAML"
    ),
    Case(
        "config-a-string",
        config("just some text\n"),
        "config.yaml:1: error: invalid config: when expecting a mapping",
    ),
    Case(
        "config-a-list",
        config("- registry\n- r.example.org\n"),
        "config.yaml:2: error: invalid config: when expecting a mapping",
    ),
    Case(
        "config-invalid-utf8",
        config(b"registry: r.example.org\nnamespace: \xe9quipe\n"),
        "config.yaml:2: error: not UTF-8 text (byte 0xe9)",
    ),
    Case(
        "config-key-twice",
        config("registry: a.example.org\nregistry: b.example.org\n"),
        "config.yaml:2: error: key 'registry' is given twice",
    ),
    Case(
        "config-anchor",
        config("registry: &r a.example.org\nnamespace: *r\n"),
        "config.yaml:1: error: bad value for 'registry'",
    ),
    Case(
        "config-tag",
        config("registry: !!python/object a\n"),
        "config.yaml:1: error: bad value for 'registry'",
    ),
    bad_type("registry", "[a, b]"),
    bad_type("namespace", "{team: 1}"),
    bad_type("username", "[me]"),
    bad_type("password", "[secret]"),
    bad_type("base_images", "debian:bookworm"),
    bad_type("base_images", "[[debian]]"),
    bad_type("apt_options", "[-q]"),
    bad_type("http_proxy", "{host: proxy}"),
    bad_type("apt_only_proxy", "[proxy]"),
    bad_type("scan_workers", "lots"),
    bad_type("scan_workers", "0"),
    bad_type("fallback_author", "[me]"),
    bad_type("fallback_email", "{a: b}"),
    bad_type("distribution", "[bookworm]"),
    bad_type("update_id", "7"),
    bad_type("update_id", "[s]"),
    bad_type("ca_bundle", "[ca.pem]"),
    bad_type("force_numeric_user", "maybe"),
    bad_type("known_uid_mappings", "[root]"),
    bad_type("known_uid_mappings", "{www-data: lots}"),
    bad_type("verify_command", "[bash]"),
    bad_type("verify_args", "-c"),
    bad_type("container_limits", "[memory]"),
    Case(
        "config-container-limits-unknown-key",
        config("registry: r\ncontainer_limits:\n  memory: 100\n  cpus: 2\n"),
        "config.yaml:2: error: bad value for 'container_limits': unknown key 'cpus' (known: "
        "cpusetcpus, cpushares, memory, memswap)",
    ),
    Case(
        "config-container-limits-unknown-key-string",
        config("registry: r\ncontainer_limits: memory=100,swap=1\n"),
        "config.yaml:2: error: bad value for 'container_limits': unknown key 'swap'",
    ),
    Case(
        "config-registry-url",
        config("site: test\nregistry: http://127.0.0.1:5000\n"),
        "config.yaml:2: error: bad value for 'registry': 'http://127.0.0.1:5000' is a URL",
    ),
    Case(
        "config-registry-trailing-slash",
        config("site: test\nregistry: 127.0.0.1:5000/\n"),
        "config.yaml:2: error: bad value for 'registry': '127.0.0.1:5000/' ends in '/'; "
        "give the host[:port] only ('127.0.0.1:5000')",
    ),
    Case(
        "config-registry-with-path",
        config("site: test\nregistry: r.example.org/team\n"),
        "config.yaml:2: error: bad value for 'registry': 'r.example.org/team' holds a path; give "
        "the host[:port] only ('r.example.org') and put 'team' in front of 'namespace'",
    ),
    Case(
        "config-registry-space",
        config("site: test\nregistry: r example\n"),
        "config.yaml:2: error: bad value for 'registry': 'r example' is not a registry host",
    ),
    Case(
        "config-namespace-uppercase",
        config("site: test\nnamespace: Rt3/V\n"),
        "config.yaml:2: error: bad value for 'namespace': namespace 'Rt3/V' is not a valid "
        "repository path",
    ),
    Case(
        "config-namespace-empty-part",
        config("site: test\nnamespace: a//b\n"),
        "config.yaml:2: error: bad value for 'namespace': namespace 'a//b' is not a valid "
        "repository path: each '/'-separated part must be lowercase letters and digits, separated "
        "by '.', '_', '__' or dashes (no empty part)",
    ),
    Case(
        "config-namespace-space",
        config("site: test\nnamespace: a b\n"),
        "config.yaml:2: error: bad value for 'namespace': namespace 'a b'",
    ),
    # -- the tree ----------------------------------------------------------------------------------
    Case(
        "image-name-uppercase",
        images("MyImage"),
        "MyImage/changelog:1: error: image name 'MyImage' is not a valid repository path",
    ),
    Case(
        "image-name-too-long",
        images("a" * 250),
        f"{'a' * 250}/changelog:1: error: the repository name is 2",
    ),
    Case(
        "image-name-uppercase-build",
        images("MyImage"),
        "MyImage/changelog:1: error: image name 'MyImage'",
        ("build", "images"),
    ),
    Case(
        "tree-missing",
        lambda w: None,
        "nowhere: error: no such folder",
        ("plan", "--offline", "nowhere"),
    ),
    Case(
        "tree-is-a-file",
        lambda w: write(w / "afile", "x\n"),
        "afile: error: not a folder",
        ("plan", "--offline", "afile"),
    ),
    Case(
        "tree-empty",
        lambda w: (w / "empty").mkdir(),
        "empty: error: no images here",
        ("plan", "--offline", "empty"),
    ),
    Case(
        "tree-empty-build",
        lambda w: (w / "empty").mkdir(),
        "empty: error: no images here",
        ("build", "empty"),
    ),
    Case(
        "tree-only-skipped-folders",
        chain(
            lambda w: shutil.rmtree(w / "images"), put("half/Dockerfile.template", "FROM scratch\n")
        ),
        "images: error: no images here",
    ),
    Case(
        "tree-symlink-loop",
        chain(link("base/a", "b"), link("base/b", "a")),
        "base/a: error: symlink loop: 'b' leads back to itself",
    ),
    Case(
        "tree-symlink-to-own-folder",
        link("base/again", "."),
        "base/again: error: symlink loop: '.' is a folder holding the link",
    ),
    Case("tree-symlink-to-parent", link("base/sub", "../base"), "base/sub: error: symlink loop"),
    Case(
        "tree-symlink-to-config",
        link("base/secret.yaml", "../../config.yaml"),
        "base/secret.yaml: error: symlink to '../../config.yaml' leads to what may hold "
        "credentials",
    ),
    Case(
        "tree-symlink-outside",
        chain(lambda w: write(w / "notes.txt", "x\n"), link("base/notes.txt", "../../notes.txt")),
        "base/notes.txt: error: symlink to '../../notes.txt' leads outside the repository "
        "holding the tree",
    ),
    Case(
        "tree-symlink-folder-outside",
        chain(lambda w: write(w / "shared/x", "x\n"), link("base/shared", "../../shared")),
        "base/shared: error: symlink to '../../shared' leads outside the repository",
    ),
    Case(
        "tree-symlink-absolute",
        link("base/etc", "/etc"),
        "base/etc: error: symlink to '/etc' leads outside the repository",
    ),
    Case(
        "tree-symlink-into-docker-folder",
        chain(
            lambda w: write(w / "images/.docker/config.json", "{}\n"),
            link("base/auth.json", "../.docker/config.json"),
        ),
        "base/auth.json: error: symlink to '../.docker/config.json' leads to what may hold "
        "credentials",
        env=(("DOCKER_CONFIG", "images/.docker"),),
    ),
    Case(
        "tree-symlink-dangling",
        link("base/gone.txt", "../common/gone.txt"),
        "base/gone.txt: error: symlink to missing '../common/gone.txt'",
    ),
    Case(
        "tree-symlink-to-fifo",
        chain(lambda w: os.mkfifo(w / "images" / "pipe"), link("base/pipe", "../pipe")),
        "base/pipe: error: symlink to '../pipe' leads to something that is not a file or folder",
    ),
    Case(
        "tree-symlink-loop-through-linked-folder",
        chain(
            put("common/x", "x\n"),
            link("common/back", "../base"),
            link("base/common", "../common"),
        ),
        "base/common/back: error: symlink loop: '../base' is a folder holding the link",
    ),
    Case(
        "tree-symlink-to-config-build",
        link("base/secret.yaml", "../../config.yaml"),
        "base/secret.yaml: error: symlink to '../../config.yaml' leads to what may hold",
        ("build", "images"),
    ),
    Case(
        "tree-symlink-to-config-apply",
        link("base/secret.yaml", "../../config.yaml"),
        "base/secret.yaml: error: symlink to '../../config.yaml' leads to what may hold",
        ("apply", "images"),
    ),
    Case(
        "tree-symlink-outside-nested",
        chain(
            put("base/deep/er/x", "x\n"),
            lambda w: write(w / "notes.txt", "x\n"),
            link("base/deep/er/notes", "../../../../notes.txt"),
        ),
        "base/deep/er/notes: error: symlink to '../../../../notes.txt' leads outside",
    ),
    Case(
        "tree-fifo-in-context", fifo("base/pipe"), "base/pipe: error: not a file, folder or symlink"
    ),
    # -- update ------------------------------------------------------------------------------------
    Case(
        "update-unknown-image",
        lambda w: None,
        "images: error: no image is named 'bse'; did you mean base?",
        ("update", "bse", "images"),
    ),
    Case(
        "update-version-lower",
        lambda w: None,
        "base/changelog:1: error: image 'base': --version 0.9 is not greater than the "
        "current version 1.0",
        ("update", "base", "images", "--version", "0.9"),
    ),
    Case(
        "update-version-same",
        lambda w: None,
        "base/changelog:1: error: image 'base': --version 1.0 is not greater",
        ("update", "base", "images", "--version", "1.0"),
    ),
    Case(
        "update-version-invalid",
        lambda w: None,
        "base/changelog:1: error: image 'base': 'not a version' is not a valid Debian version",
        ("update", "base", "images", "--version", "not a version"),
    ),
    Case(
        "update-version-suffix-invalid",
        lambda w: None,
        "app/changelog:1: error: image 'app': --version-suffix '~bad' must start",
        ("update", "--all", "images", "--version-suffix", "~bad"),
    ),
    Case(
        "update-all-with-version",
        lambda w: None,
        "images: error: --version sets one image's version",
        ("update", "--all", "images", "--version", "2.0"),
    ),
    Case(
        "update-broken-tree",
        put("tools/changelog", ""),
        "tools/changelog: error: the changelog is empty",
        ("update", "base", "images"),
    ),
    Case(
        "apply-update-stale",
        chain(
            run_cli("plan-update", "base", "images", "--out", "p.json"),
            put("base/changelog", changelog("base", "1.1") + "\n" + changelog("base")),
        ),
        "base/changelog:1: error: changed since the plan was made: version 1.1, not 1.0",
        ("apply", "p.json"),
    ),
    Case(
        "apply-update-stale-names-plan",
        chain(
            run_cli("plan-update", "base", "images", "--out", "p.json"),
            put("app/changelog", changelog("app") + "\n"),
        ),
        "p.json: error: stale plan",
        ("apply-update", "p.json"),
    ),
    Case(
        "apply-build-stale",
        chain(
            run_cli("plan", "--offline", "images", "--out", "p.json"),
            template("FROM scratch\nRUN changed\n"),
        ),
        "p.json: error: stale plan",
        ("apply", "p.json"),
    ),
    Case(
        "apply-not-a-plan",
        lambda w: write(w / "p.json", "{not json\n"),
        "p.json: error: not a dockerpkg plan",
        ("apply", "p.json"),
    ),
    Case(
        "apply-missing-target",
        lambda w: None,
        "nope.json: error: no such file or folder",
        ("apply", "nope.json"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_work(work)
    monkeypatch.chdir(work)
    for key, value in case.env:
        monkeypatch.setenv(key, value)
    case.build(work)
    capsys.readouterr()
    before = fingerprint(work)
    status = main(list(case.argv))
    out, err = capsys.readouterr()
    assert status == 1, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert any(line.startswith(case.expect) for line in lines), err
    assert SUMMARY_LINE.fullmatch(lines[-1]), err
    for line in lines[:-1]:
        assert PROBLEM_LINE.fullmatch(line) or STYLE_LINE.fullmatch(line), line
    assert fingerprint(work) == before


def test_at_least_forty_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 40


# --- accepted inputs ---------------------------------------------------------------------------


def crlf(work: Path) -> None:
    for path in [*(work / "images").rglob("*"), work / "config.yaml"]:
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


ACCEPTED = [
    Case(
        "flow-style-config",
        config(
            "{registry: r.example.org, base_images: [debian:12, alpine:3], "
            "container_limits: {memory: 100000000}}\n"
        ),
        "",
    ),
    Case("empty-config", config(""), ""),
    Case("registry-localhost-port", config("registry: localhost:5000\n"), ""),
    Case("registry-ipv6", config("registry: '[::1]:5000'\nnamespace: team/sub-team\n"), ""),
    Case("registry-none", config("registry: ''\nnamespace: ''\n"), ""),
    Case("image-names-with-separators", images("php7.4-fpm", "x.y--w"), ""),
    Case("comment-only-config", config("# nothing to set\n\n"), ""),
    Case("no-config-file", lambda w: (w / "config.yaml").unlink(), ""),
    Case("limits-as-string", config("container_limits: memory=100000000,cpushares=512\n"), ""),
    Case(
        "versioned-depends", control("Package: app\nDepends: base (>= 1.0), tools (<< 2:0)\n"), ""
    ),
    Case(
        "depends-continued-with-trailing-comma",
        control("Package: app\nDepends: base,\n tools,\n"),
        "",
    ),
    Case(
        "comments-in-control",
        control("# built on base\nPackage: app\n# and the tools\nDepends: base\n"),
        "",
    ),
    Case("crlf-line-endings", crlf, ""),
    Case(
        "non-ascii-template",
        template('FROM scratch\n# Grüße, 日本語, ✓\nLABEL maintainer="Zoë"\n'),
        "",
    ),
    Case(
        "non-ascii-changelog",
        put("base/changelog", changelog("base").replace("Jane Doe", "Jöhn Dœ")),
        "",
    ),
    Case(
        "include-from-subfolder",
        chain(
            put("base/steps/run.txt", "RUN true\n"),
            template("FROM scratch\n{% include 'steps/../steps/run.txt' %}\n"),
        ),
        "",
    ),
    Case(
        "symlink-inside-folder",
        chain(
            link("base/same.txt", "hello.txt"), put("base/sub/x", "x\n"), link("base/alias", "sub")
        ),
        "",
    ),
    Case(
        "own-label-through-image-tag",
        template("FROM scratch\nLABEL self={{ 'base' | image_tag }}\n"),
        "",
    ),
    Case(
        "nested-image-folder",
        chain(
            put("base/inner/Dockerfile.template", "FROM scratch\n"),
            put("base/inner/changelog", changelog("inner")),
        ),
        "",
    ),
    Case(
        "symlink-to-other-image-file",
        link("base/app.template", "../app/Dockerfile.template"),
        "",
    ),
    Case("symlink-to-sibling-folder", link("base/shared", "../tools"), ""),
    Case(
        "symlink-absolute-inside-the-tree",
        lambda w: os.symlink(w / "images" / "app" / "Dockerfile.template", w / "images/base/t"),
        "",
    ),
    Case(
        "symlink-loop-outside-image-folders",
        chain(link("loop-a", "loop-b"), link("loop-b", "loop-a"), link("top", ".")),
        "",
    ),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_accepted(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_work(work)
    monkeypatch.chdir(work)
    case.build(work)
    status = main(list(case.argv))
    out, err = capsys.readouterr()
    assert status == 0, err
    assert ": error:" not in err
    assert "Traceback" not in out + err


def test_update_of_crlf_changelogs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_work(work)
    crlf(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    assert main(["update", "base", "images", "--version", "1.1"]) == 0
    assert main(["plan", "--offline", "--json", "images"]) == 0
    out, _ = capsys.readouterr()
    assert '"tag": "1.1"' in out
    old = (work / "images/base/changelog").read_bytes()
    assert old.startswith(b"base (1.1) wikimedia; urgency=high\n")
    assert old.endswith(changelog("base").replace("\n", "\r\n").encode())


# --- the build context copy --------------------------------------------------------------------


class TestContextCopy:
    """What apply sends to Docker: a copy of the image folder with its links followed, refused
    if a link leads where it may not, even one made after planning."""

    def test_link_outside_refused_naming_it(self, tmp_path: Path) -> None:
        tree = write_work(tmp_path)
        (tmp_path / "notes.txt").write_text("x\n")
        os.symlink("../../notes.txt", tree / "base" / "notes.txt")
        with (
            pytest.raises(TaskFailedError) as info,
            _context(tree, "base", "base", POLICY(str(tree))),
        ):
            pass
        message = str(info.value)
        assert message.startswith("refused to copy into the build context: base/notes.txt: ")
        assert "leads outside the repository holding the tree" in message

    def test_links_followed_into_copies(self, tmp_path: Path) -> None:
        tree = write_work(tmp_path)
        os.symlink("hello.txt", tree / "base" / "same.txt")
        write(tree / "common" / "run.sh", "#!/bin/sh\n")
        (tree / "common" / "run.sh").chmod(0o755)
        os.symlink("../common", tree / "base" / "common")
        with _context(tree, "base", "base", POLICY(str(tree))) as context:
            assert not (context / "same.txt").is_symlink()
            assert (context / "same.txt").read_text() == "hello\n"
            assert not (context / "common").is_symlink()
            assert (context / "common" / "run.sh").stat().st_mode & 0o777 == 0o755
        assert not context.exists()
