import pytest


@pytest.fixture
def write(tmp_path):
    """write("name", text) -> path of a file in tmp_path."""

    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return _write
