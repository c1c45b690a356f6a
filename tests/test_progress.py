"""Progress on stderr: a bar in a terminal, a few lines in a log file (issue 21, item 8)."""

import io

from waveunet_tf.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_line_per_quarter_and_one_at_the_end():
    log = io.StringIO()
    with Progress(8, "synth", "track", stream=log) as progress:
        for _ in range(8):
            progress.update(1)
    assert log.getvalue().splitlines() == ["synth: 2/8 tracks (25%)", "synth: 4/8 tracks (50%)",
                                           "synth: 6/8 tracks (75%)", "synth: 8/8 tracks (100%)"]


def test_a_resumed_job_counts_from_where_it_was_and_an_interrupted_one_says_where_it_stopped():
    log = io.StringIO()
    with Progress(1000, "download", "B", initial=300, stream=log) as progress:
        for _ in range(4):
            progress.update(100)  # 400, 500 (the second quarter), 600, 700
    assert log.getvalue().splitlines() == ["download: 500 B of 1 kB (50%)", "download: 700 B of 1 kB (70%)"]
    unknown = io.StringIO()
    with Progress(None, "download", "B", stream=unknown) as progress:
        progress.update(2_500_000)
    assert unknown.getvalue() == "download: 2.5 MB\n"


def test_a_terminal_gets_a_bar_and_disabled_shows_nothing():
    tty = Terminal()
    with Progress(8, "prepare", "track", stream=tty) as progress:
        for _ in range(8):
            progress.update(1)
    assert "\r" in tty.getvalue() and "8/8" in tty.getvalue() and "(25%)" not in tty.getvalue()
    for stream in (Terminal(), io.StringIO()):
        with Progress(8, "prepare", "track", enabled=False, stream=stream) as progress:
            progress.update(8)
        assert stream.getvalue() == ""


def test_synth_into_a_log_file_writes_lines_not_a_bar(tmp_path, capsys):
    from waveunet_tf.cli import main
    assert main(["synth", str(tmp_path / "d"), "--tracks", "3", "--test-tracks", "1", "--seconds", "0.2"]) == 0
    assert capsys.readouterr().err.splitlines() == ["synth: 1/4 tracks (25%)", "synth: 2/4 tracks (50%)",
                                                    "synth: 3/4 tracks (75%)", "synth: 4/4 tracks (100%)"]
