"""Config parsing: docker-pkg's keys, defaults, types, merging and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.api import build_engine
from dockerpkg.core.config import Config, load_config
from dockerpkg.core.plan import BuildEngine
from dockerpkg.effects.configfile import read_config
from dockerpkg.errors import DockerPkgError


def parse(text: str, path: str = "config.yaml") -> Config:
    return load_config([(path, text)])


class TestDefaults:
    """An empty or comment-only file gives docker-pkg's defaults."""

    @pytest.mark.parametrize("text", ["", "\n", "# nothing here\n"])
    def test_empty_file(self, text: str) -> None:
        config = parse(text)
        assert config == Config()
        assert config.scan_workers == 8
        assert config.distribution == "wikimedia"
        assert dict(config.known_uid_mappings) == {"root": 0, "www-data": 33, "nobody": 65534}
        assert config.verify_args == ("-c", "{path}/test.sh {image}")


class TestTypes:
    """Known keys are typed; unknown keys pass through in any YAML shape."""

    def test_typed_values_and_flow_style(self) -> None:
        config = parse(
            "scan_workers: 3\nbase_images: [a:1, b:2]\nforce_numeric_user: true\n"
            "known_uid_mappings: {app: 900}\nverify_args: ['-c', 'true']\n"
        )
        assert config.scan_workers == 3
        assert config.base_images == ("a:1", "b:2")
        assert config.force_numeric_user is True
        assert dict(config.known_uid_mappings) == {"app": 900}
        assert config.verify_args == ("-c", "true")

    def test_unknown_keys_are_template_variables(self) -> None:
        config = parse("mirror:\n  host: m\n  port: 8443\nflags: [--a, --b]\non: yes\n")
        variables = config.template_variables()
        assert variables["mirror"] == {"host": "m", "port": 8443}
        assert list(variables["flags"]) == ["--a", "--b"]
        assert variables["namespace"] == ""

    def test_password_is_not_a_template_variable(self) -> None:
        config = parse("username: u\npassword: s3cret\n")
        assert "password" not in config.template_variables()
        assert "s3cret" not in repr(config)

    def test_apt_only_proxy_falls_back_to_http_proxy(self) -> None:
        assert parse("http_proxy: http://p:8080\n").apt_only_proxy == "http://p:8080"
        config = parse("http_proxy: http://p:8080\napt_only_proxy: http://a:3142\n")
        assert config.apt_only_proxy == "http://a:3142"

    def test_container_limits_string_or_mapping(self) -> None:
        assert dict(parse("container_limits: memory=1000000,cpushares=2\n").container_limits) == {
            "memory": 1000000,
            "cpushares": 2,
        }
        assert dict(parse("container_limits: {memory: 5}\n").container_limits) == {"memory": 5}


class TestErrors:
    """A bad value names the file, the key and the line."""

    def test_bad_int(self) -> None:
        with pytest.raises(DockerPkgError) as info:
            parse("registry: r\nscan_workers: many\n", "conf/x.yaml")
        (problem,) = info.value.problems
        assert problem.location.path == "conf/x.yaml"
        assert problem.location.line == 2
        assert "'scan_workers'" in problem.message

    def test_bad_list(self) -> None:
        with pytest.raises(DockerPkgError) as info:
            parse("base_images:\n  nested: map\n")
        (problem,) = info.value.problems
        assert problem.location.line in (1, 2)
        assert "'base_images'" in problem.message

    def test_bad_limits_key(self) -> None:
        with pytest.raises(DockerPkgError) as info:
            parse("a: 1\ncontainer_limits: gpus=1\n")
        assert info.value.problems[0].location.line == 2


class TestFiles:
    """The user file lies under the -c file, key by key, as in docker-pkg."""

    def test_user_file_merged_under(self, tmp_path: Path) -> None:
        xdg = tmp_path / "xdg"
        xdg.mkdir()
        (xdg / "docker-pkg.yaml").write_text("registry: user.example\nnamespace: mine\n")
        main = tmp_path / "config.yaml"
        main.write_text("registry: main.example\n")
        loaded = read_config(str(main), {"XDG_CONFIG_HOME": str(xdg)})
        assert loaded.config.registry == "main.example"
        assert loaded.config.namespace == "mine"
        assert len(loaded.files) == 2

    def test_missing_named_file(self, tmp_path: Path) -> None:
        with pytest.raises(DockerPkgError) as info:
            read_config(str(tmp_path / "nope.yaml"), {"HOME": str(tmp_path)})
        assert "not found" in str(info.value)


class TestBuildEngine:
    """`build_engine` picks the daemon's builder; DOCKER_BUILDKIT, as for the docker CLI,
    overrides it for one run."""

    def test_default_and_values(self) -> None:
        assert parse("").engine is BuildEngine.BUILDKIT
        assert parse("build_engine: classic\n").engine is BuildEngine.CLASSIC
        assert parse("build_engine: buildkit\n").engine is BuildEngine.BUILDKIT

    def test_container_limits_choose_the_classic_builder_unless_told(self) -> None:
        """BuildKit would ignore the limits."""
        assert parse("container_limits: {memory: 5000000}\n").engine is BuildEngine.CLASSIC
        both = "container_limits: {memory: 5000000}\nbuild_engine: buildkit\n"
        assert parse(both).engine is BuildEngine.BUILDKIT

    def test_not_a_template_variable(self) -> None:
        assert "build_engine" not in parse("build_engine: classic\n").template_variables()

    def test_bad_value_is_located(self) -> None:
        with pytest.raises(DockerPkgError) as info:
            parse("registry: r\nbuild_engine: kaniko\n", "conf/x.yaml")
        (problem,) = info.value.problems
        assert (problem.location.path, problem.location.line) == ("conf/x.yaml", 2)
        assert "'build_engine'" in problem.message

    @pytest.mark.parametrize(
        ("text", "env", "expected"),
        [
            ("", {}, BuildEngine.BUILDKIT),
            ("", {"DOCKER_BUILDKIT": "0"}, BuildEngine.CLASSIC),
            ("build_engine: classic\n", {"DOCKER_BUILDKIT": "1"}, BuildEngine.BUILDKIT),
            ("build_engine: classic\n", {"DOCKER_BUILDKIT": ""}, BuildEngine.CLASSIC),
            ("build_engine: classic\n", {"DOCKER_BUILDKIT": "true"}, BuildEngine.BUILDKIT),
            ("container_limits: memory=5000000\n", {}, BuildEngine.CLASSIC),
            ("container_limits: memory=5000000\n", {"DOCKER_BUILDKIT": "1"}, BuildEngine.BUILDKIT),
        ],
    )
    def test_environment_overrides(
        self, text: str, env: dict[str, str], expected: BuildEngine
    ) -> None:
        assert build_engine(parse(text), env) is expected
