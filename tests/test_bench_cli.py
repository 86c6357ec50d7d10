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
