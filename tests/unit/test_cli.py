from typer.testing import CliRunner

from cluster.ops.cli import app


def test_demo_prints_predictions():
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "learned PTRN|" in result.output
    assert "predictions" in result.output and '"future"' in result.output


def test_help_explains_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output and "bench" in result.output


def test_every_benchmark_is_a_bench_sub_command():
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("run", "shards", "http", "storage"):
        assert f"│ {command} " in result.output, result.output
