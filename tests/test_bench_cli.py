"""``rnnfast bench --only``: a tiny run prints the tables of the sections it ran, and no empty one."""
import rnnfast.bench as bench

TINY = ["--no-torch", "--cells", "elman", "--repeat", "1", "--min-time", "0.001", "--settle", "0", "--no-memory"]


def test_only_varlen_prints_no_training_table(capsys):
    bench.main(["--only", "varlen", "--varlen-shapes", "4x10x8"] + TINY)
    out = capsys.readouterr().out
    assert "variable-length training step" in out and "elman  4  10  8" in out
    assert "rnnfast/floor" not in out and "sgemm" not in out       # the training table and its floor


def test_only_train_prints_the_training_table_alone(capsys):
    bench.main(["--only", "train", "--shapes", "2x5x8"] + TINY)
    out = capsys.readouterr().out
    assert "rnnfast/floor" in out and "floor = 3 x forward GEMM FLOPs" in out
    assert "variable-length" not in out and "streaming step" not in out


def test_bad_options_are_usage_errors_before_any_measurement(capsys, tmp_path):
    """argparse's usage error (exit status 2) names the option; --json is checked before the run, not after."""
    import pytest

    for argv, message in ((["--threads", "0"], "--threads: expected an integer >= 1"),
                          (["--repeat", "0"], "--repeat: expected an integer >= 1"),
                          (["--min-time", "0"], "--min-time: expected a number of seconds > 0"),
                          (["--min-time", "nan"], "--min-time: expected a number of seconds > 0"),
                          (["--shapes", ","], "--shapes: expected at least one shape"),
                          (["--json", str(tmp_path / "no" / "out.json")], "cannot write a file there"),
                          (["--json", str(tmp_path)], "cannot write a file there"),
                          (["--only", "streaming", "--no-extras"], "no rows to run")):
        with pytest.raises(SystemExit) as stop:
            bench.main(["--only", "train", "--shapes", "2x5x8"] + TINY + argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err, argv
    assert list(tmp_path.iterdir()) == []


def test_a_row_timed_beside_a_slow_sgemm_is_reported_noisy_and_not_counted():
    from rnnfast._bench_report import targets

    def row(cell, sgemm, rnnfast_ms):
        return dict(cell=cell, B=8, T=10, H=16, rnnfast_ms=rnnfast_ms, torch_ms=10.0, floor_ms=1.0,
                    sgemm_gflops=sgemm)
    results = {"train": [row("lstm", 150.0, 2.0), row("lstm", 160.0, 20.0), row("elman", 60.0, 30.0)],
               "streaming": [], "varlen": []}
    rows = targets(results)
    assert [t["noisy"] for t in rows] == [False, False, True]       # 60 < 0.7 x the median 150
    assert [t["met"] for t in rows] == [True, False, False]
