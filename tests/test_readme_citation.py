"""The README cites the paper orpose implements (ORPose, MICCAI 2020), not its follow-up."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _intro() -> str:
    """The README up to its first section heading, lines joined."""
    text = README.read_text().split("\n## ", 1)[0]
    return " ".join(text.split())


def test_readme_cites_the_miccai_2020_paper_as_the_method():
    intro = _intro()
    method = intro.split("1. a slow", 1)[0]  # the sentence that names the implemented paper
    assert (
        '"Self-supervision on Unlabelled OR Data for Multi-person 2D/3D Human Pose Estimation"'
        in method
    )
    assert "MICCAI 2020" in method and "2007.08354" in method
    assert "CAMMA-public/ORPose-Color" in method
    assert "Medical Image Analysis" not in method


def test_readme_says_what_the_official_code_holds_and_names_the_follow_up_apart():
    intro = _intro()
    for words in ("demo notebook", "8x, 10x and 12x", "utils_eval.py", "no training script",
                  "no teacher", "lifter training", "student training", "privacy mode",
                  "export"):  # fmt: skip
        assert words in intro, words
    follow_up = intro.split("follow-up", 1)[1]
    assert "Medical Image Analysis 2022" in follow_up and "HPE-AdaptOR" in follow_up
