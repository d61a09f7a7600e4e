"""LabelledFormat: read_labelled's options as a config."""

from rnnkit.data.labelled_format import LabelledFormat


def test_columns_given_as_digits_are_indices(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("pos,a fine film\nneg,a dull plot\n", encoding="utf-8")
    report = LabelledFormat(text_column="1", label_column="0", header=False).read(path)
    assert [(e.text, e.label) for e in report.examples] == [("a fine film", "pos"),
                                                          ("a dull plot", "neg")]


def test_options_reach_the_reader(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("review,stars\ngreat,5\n,1\nbad,1\n", encoding="utf-8")
    report = LabelledFormat(format="csv", label_column="stars", skip_bad_rows=True).read(path)
    assert [(e.text, e.label) for e in report.examples] == [("great", "5"), ("bad", "1")]
    assert len(report.skipped) == 1 and "data.csv:3" in report.skipped[0]
