import json

import pytest

from pinnprob.cli import main


def test_demo_writes_figures(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--samples", "200"]) == 0
    for name in ("fields.png", "covariance.png"):
        f = tmp_path / name
        assert f.is_file() and f.stat().st_size > 10_000


def test_train_from_config_and_resume(tmp_path, capsys):
    cfg = {"family": "spectral", "modes_per_dim": 8, "modes_per_step": 16, "width": 8, "depth": 1,
           "steps": 6, "batch_size": 2, "train_range": [[0.2, 0.5], [1.0, 2.0]]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out, ck = tmp_path / "p.eqx", tmp_path / "p.ckpt"
    assert main(["train", str(tmp_path / "c.json"), "--out", str(out), "--checkpoint", str(ck), "--quiet"]) == 0
    assert out.is_file() and ck.is_file()
    assert main(["train", str(tmp_path / "c.json"), "--out", str(out), "--checkpoint", str(ck), "--resume",
                 "--quiet"]) == 0
    assert "saved" in capsys.readouterr().out


@pytest.mark.parametrize("content, match", [(None, "no such config"), ("{not json", "bad config"),
                                            ('{"colour": 1}', "unknown configuration keys")])
def test_train_bad_config_is_one_clear_line(tmp_path, content, match):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit, match=match):
        main(["train", str(path)])
