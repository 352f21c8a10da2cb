"""New versions for `update`: automatic bumps, --version checks and --version-suffix."""

from __future__ import annotations

import re

import pytest
from debian.debian_support import Version
from hypothesis import assume, example, given
from hypothesis import strategies as st

from dockerpkg.core.labels import is_docker_tag
from dockerpkg.core.versions import VersionError, bump, check_requested, with_suffix

UPDATE_IDS = st.sampled_from("sabz")


@st.composite
def debian_versions(draw: st.DrawFn) -> str:
    """Any version python-debian accepts: epochs, `~`, `+`, letters, revisions, and
    docker-pkg's own `-sN` bumps."""
    epoch = draw(st.none() | st.integers(0, 30).map(str))
    revision = draw(
        st.none()
        | st.from_regex(r"[A-Za-z0-9.+~]{1,6}", fullmatch=True)
        | st.from_regex(r"[a-z][0-9]{1,3}", fullmatch=True)
    )
    pieces = ["0", "1", "9", "10", ".", ".0", "~", "~rc1", "+", "+dfsg", "a", "z", "Q", "rc"]
    pieces += ["-", "-1"] if revision is not None else []
    pieces += [":"] if epoch is not None else []
    first = draw(st.sampled_from("0123456789"))
    upstream = first + "".join(draw(st.lists(st.sampled_from(pieces), max_size=6)))
    text = (f"{epoch}:" if epoch is not None else "") + upstream
    text += f"-{revision}" if revision is not None else ""
    try:
        Version(text)
    except ValueError:
        assume(False)
    return text


# What docker-pkg could bump: digits, dots and dashes, maybe ending in -<id><N>.
DOCKER_PKG_VERSIONS = st.from_regex(
    r"[0-9][0-9.]{0,6}(-[0-9.]{1,4}){0,2}(-s[0-9]{1,3})?", fullmatch=True
)


def docker_pkg_bump(version: str, update_id: str) -> str:
    """docker-pkg's documented rule (regex `^([\\d\\-\\.]+?)(-ID(\\d+))?$`), for comparison."""
    match = re.fullmatch(rf"([\d\-.]+?)(-{update_id}(\d+))?", version)
    assert match is not None
    number = 1 if match.group(3) is None else int(match.group(3)) + 1
    return f"{match.group(1)}-{update_id}{number}"


class TestBump:
    """The automatic bump: docker-pkg's result where it had one, and always greater."""

    @given(debian_versions(), UPDATE_IDS)
    @example("2:7.1-3", "s")
    @example("1.0~rc1", "s")
    @example("1.0+dfsg-2", "s")
    @example("1.0a", "s")
    @example("1.0-", "s")
    @example("1:1.0-s9", "s")
    def test_always_greater(self, version: str, update_id: str) -> None:
        new = bump(version, update_id)
        assert Version(new) > Version(version)

    @given(debian_versions(), UPDATE_IDS)
    def test_keeps_docker_tags_valid(self, version: str, update_id: str) -> None:
        if is_docker_tag(version):
            assert is_docker_tag(bump(version, update_id))

    @given(DOCKER_PKG_VERSIONS)
    def test_same_as_docker_pkg_where_it_worked(self, version: str) -> None:
        assert bump(version, "s") == docker_pkg_bump(version, "s")

    @pytest.mark.parametrize(
        ("current", "expected"),
        [
            ("5", "5-s1"),
            ("0.4.1-s2", "0.4.1-s3"),
            ("1.0.0-1", "1.0.0-1-s1"),
            ("1.21-1-20260816", "1.21-1-20260816-s1"),
            ("1-s09", "1-s10"),
            ("2:7.1-3", "2:7.1-3-s1"),
            ("2:7.1-3-s4", "2:7.1-3-s5"),
            ("1.0~rc1", "1.0~rc1-s1"),
            ("1.0+dfsg", "1.0+dfsg-s1"),
            ("1.0-1ubuntu2", "1.0-1ubuntu2-s1"),
        ],
    )
    def test_examples(self, current: str, expected: str) -> None:
        assert bump(current, "s") == expected

    def test_update_id_is_the_letter(self) -> None:
        assert bump("1.0-b3", "b") == "1.0-b4"
        assert bump("1.0-s3", "b") == "1.0-s3-b1"


class TestRequestedVersion:
    """--version must be a Debian version greater than the current one."""

    def test_greater_is_taken(self) -> None:
        assert check_requested("0.5.0-1", "0.4.1-s2") == "0.5.0-1"

    @pytest.mark.parametrize("requested", ["0.4.1-s2", "0.4.1", "0.4.1-s1", "0.4.1~rc1"])
    def test_not_greater_is_refused(self, requested: str) -> None:
        with pytest.raises(VersionError, match=r"--version .* is not greater than the current"):
            check_requested(requested, "0.4.1-s2")

    def test_invalid_is_refused(self) -> None:
        with pytest.raises(VersionError, match="not a valid Debian version"):
            check_requested("1.0 beta", "0.1")

    @given(debian_versions(), debian_versions())
    def test_accepts_exactly_the_greater(self, requested: str, current: str) -> None:
        if Version(requested) > Version(current):
            assert check_requested(requested, current) == requested
        else:
            with pytest.raises(VersionError):
                check_requested(requested, current)


class TestVersionSuffix:
    """--version-suffix replaces a trailing suffix of the same shape, or appends one."""

    @pytest.mark.parametrize(
        ("current", "suffix", "expected"),
        [
            ("1.21-1-20260816", "20261126", "1.21-1-20261126"),
            ("5", "20261126", "5-20261126"),
            ("1.0-1", "20261126", "1.0-1-20261126"),
            ("2:1.0-1-20260101", "20261126", "2:1.0-1-20261126"),
            ("1.0-20260101-120000", "20261126-080000", "1.0-20261126-080000"),
            ("1.0-nightly5", "nightly6", "1.0-nightly6"),
            # Debian would sort 1.21-1-20261126 before this one: the suffix is appended.
            ("1.21-1-20260816-s1", "20261126", "1.21-1-20260816-s1-20261126"),
        ],
    )
    def test_examples(self, current: str, suffix: str, expected: str) -> None:
        assert with_suffix(current, suffix) == expected

    @pytest.mark.parametrize(
        ("current", "suffix"), [("1.0-20270101", "20261126"), ("1.0-20261126", "20261126")]
    )
    def test_not_greater_is_refused(self, current: str, suffix: str) -> None:
        with pytest.raises(VersionError, match="not greater than the current version"):
            with_suffix(current, suffix)

    @pytest.mark.parametrize("suffix", ["", "-1", "a b", "x:y", "é"])
    def test_bad_suffix_is_refused(self, suffix: str) -> None:
        with pytest.raises(VersionError, match="--version-suffix"):
            with_suffix("1.0", suffix)

    @given(debian_versions(), st.from_regex(r"[0-9]{8}", fullmatch=True))
    def test_result_is_greater_or_refused(self, current: str, suffix: str) -> None:
        try:
            new = with_suffix(current, suffix)
        except VersionError:
            return
        assert Version(new) > Version(current)
        assert new.endswith(f"-{suffix}")
