"""A realistic app to bench against: the example app's contract, with the weight of the real Code Remote's builds.

The example app builds in about a second, so it cannot show what running the backend and frontend branches side by
side is worth; the real app's builds take minutes. This one does real build work of that kind, offline:

- backend: the Dockerfile installs the API's dependencies (FastAPI, Mangum, boto3, the Gemini, OpenAI and Anthropic
  SDKs, SQLAlchemy, pandas and what they pull in) from a wheelhouse vendored into the repository
  (`backend/wheels/`, `pip --no-index`), then byte-compiles them, on every commit (the app is copied first, as a
  `COPY . .` Dockerfile does);
- frontend: TypeScript type-checks and compiles a generated source tree of feature modules with the compiler vendored
  into the repository (`frontend/node_modules/typescript`), then the example's bundler hashes the assets.

Dependencies come from the package registries once, at set-up, and are cached under
~/.cache/coderemote-pipeline/realistic-app; nothing is fetched when the app builds. `make_realistic_repo` writes the
repository (bare remote + clone) and the app config that fits its layout; `PEER_ENV` fits hand_deploy.py to it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from coderemote_pipeline.local_stack.base_image import default_cache_dir
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, git, make_app_repo

REQUIREMENTS = ("fastapi", "mangum", "boto3", "google-genai", "sqlalchemy", "pandas", "openai", "anthropic")
TYPESCRIPT = "typescript@5"
# Sized for builds of tens of seconds on a 2-core machine (bench/deploy.py prints what they took).
FEATURE_MODULES = 4800

DOCKERFILE = """\
# Code Remote API, with its dependencies: installed from the vendored wheelhouse on every build (no network).
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12
FROM ${BASE_IMAGE}

ARG GIT_COMMIT=unknown
ENV APP_BUILD_COMMIT=${GIT_COMMIT} \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1

WORKDIR /var/task
COPY . /build/
RUN python3 "$(ls /build/wheels/pip-*.whl)/pip" install --quiet --no-index --find-links /build/wheels --no-compile \\
        --disable-pip-version-check --target /var/task -r /build/requirements.txt \\
    && python3 -m compileall -q /var/task \\
    && cp -r /build/app /var/task/app \\
    && rm -rf /build

CMD ["app.handler.handler"]
"""

DOCKERIGNORE = "tests/\n**/__pycache__/\n**/*.pyc\n"

PACKAGE_JSON = """\
{
  "name": "code-remote-frontend",
  "version": "0.0.0",
  "private": true,
  "description": "Code Remote web frontend: TypeScript feature modules compiled by the vendored tsc, then bundled.",
  "scripts": {
    "build": "node node_modules/typescript/bin/tsc -p tsconfig.json && node build.mjs"
  }
}
"""

TSCONFIG = """\
{
  "compilerOptions": {
    "target": "ES2020", "module": "None", "outFile": "src/features.js", "strict": true,
    "skipLibCheck": false, "lib": ["ES2020", "DOM"]
  },
  "include": ["features/**/*.ts"]
}
"""

APP_CONFIG = {
    "backend_context": "backend",
    "dockerfile": "Dockerfile",
    "frontend_dir": "frontend",
    "frontend_build_command": "npm run build",
    "frontend_output_dir": "dist",
    "checks": [
        {"name": "backend_tests", "side": "backend", "command": "python3 -m unittest discover -s tests"},
        {"name": "backend_lint", "side": "backend", "command": "python3 tools/lint.py app tests tools"},
        {"name": "frontend_check", "side": "frontend", "command": "node tools/check.mjs"},
    ],
}

# hand_deploy.py's layout variables for this app (its defaults fit the example app).
PEER_ENV = {"PEER_BUILD": "npm run -s build"}


def cache_dir() -> Path:
    return default_cache_dir() / "realistic-app"


def wheelhouse() -> Path:
    """The backend's dependencies as wheels for the base image's Python (3.11, x86-64), pip's own wheel included."""
    wheels = cache_dir() / "wheels"
    marker = wheels / "complete"
    if not marker.exists() or marker.read_text() != "\n".join(REQUIREMENTS):
        shutil.rmtree(wheels, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform", "any",
             "--dest", str(wheels), "pip", *REQUIREMENTS],
            check=True, capture_output=True,
        )  # fmt: skip
        (wheels / "complete").write_text("\n".join(REQUIREMENTS))
    return wheels


def typescript() -> Path:
    """node_modules holding the TypeScript compiler (pure JavaScript, so it runs on any node)."""
    root = cache_dir() / "node"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(root), TYPESCRIPT],
                       check=True, capture_output=True)  # fmt: skip
        (root / "complete").write_text(TYPESCRIPT)
    return root / "node_modules"


def feature_module(n: int) -> str:
    """One feature of the app: typed state, a reducer, a view model — the shapes a React app's modules have."""
    return f"""\
namespace Features.F{n} {{
  export interface Item{n} {{ id: number; title: string; tags: ReadonlyArray<string>; done: boolean }}
  export type Action{n} =
    | {{ kind: "add"; item: Item{n} }}
    | {{ kind: "toggle"; id: number }}
    | {{ kind: "rename"; id: number; title: string }};
  export interface State{n} {{ items: ReadonlyArray<Item{n}>; filter: "all" | "open" | "done" }}
  export function reduce{n}(state: State{n}, action: Action{n}): State{n} {{
    switch (action.kind) {{
      case "add": return {{ ...state, items: [...state.items, action.item] }};
      case "toggle":
        return {{ ...state, items: state.items.map((i) => i.id === action.id ? {{ ...i, done: !i.done }} : i) }};
      case "rename":
        return {{ ...state, items: state.items.map((i) => i.id === action.id ? {{ ...i, title: action.title }} : i) }};
    }}
  }}
  export class View{n}<T extends Item{n}> {{
    constructor(private readonly rows: ReadonlyArray<T>) {{}}
    visible(filter: State{n}["filter"]): T[] {{
      return this.rows.filter((r) => filter === "all" || (filter === "done") === r.done);
    }}
    byTag(): Map<string, T[]> {{
      const out = new Map<string, T[]>();
      for (const row of this.rows) for (const tag of row.tags) out.set(tag, [...(out.get(tag) ?? []), row]);
      return out;
    }}
  }}
  export const initial{n}: State{n} = {{ items: [], filter: "all" }};
}}
"""


def make_realistic_repo(remote: Path, clone: Path) -> str:
    """The realistic app as a bare `remote` and a working `clone` (main pushed); returns the commit."""
    make_app_repo(EXAMPLE_APP, remote, clone, message="the example app")
    # The wheels and the compiler are ~90 MB, the wheels compressed already: zlib over them cost ~14 s of every
    # set-up (git add, then the push's pack), for objects no smaller.
    for repo in (clone, remote):
        git("config", "core.compression", "0", cwd=repo)
        git("config", "pack.window", "0", cwd=repo)
    backend, frontend = clone / "backend", clone / "frontend"
    (backend / "Dockerfile").write_text(DOCKERFILE)
    (backend / ".dockerignore").write_text(DOCKERIGNORE)
    (backend / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    shutil.copytree(wheelhouse(), backend / "wheels", ignore=shutil.ignore_patterns("complete"))
    (frontend / "package.json").write_text(PACKAGE_JSON)
    (frontend / "tsconfig.json").write_text(TSCONFIG)
    shutil.copytree(typescript(), frontend / "node_modules")
    features = frontend / "features"
    features.mkdir()
    for n in range(FEATURE_MODULES):
        (features / f"feature{n:03d}.ts").write_text(feature_module(n))
    index = frontend / "src" / "index.html"
    index.write_text(index.read_text().replace(
        '<script type="module" src="./app.js"></script>',
        '<script src="./features.js"></script>\n    <script type="module" src="./app.js"></script>',
    ))  # fmt: skip
    build = frontend / "build.mjs"
    build.write_text(build.read_text().replace('["app", "js"],', '["app", "js"],\n  ["features", "js"],'))
    # The compiled features are a build output, not a source: the check must not expect them in the tree.
    check = frontend / "tools" / "check.mjs"
    check.write_text(check.read_text().replace("if (!existsSync(join", 'if (ref !== "features.js" && !existsSync(join'))
    (clone / "coderemote.yaml").write_text(yaml.safe_dump(APP_CONFIG, sort_keys=False))
    # The example's ignore rules would keep the vendored compiler out of the repository.
    return commit_and_push_all(clone, "the realistic app: vendored dependencies, TypeScript features")


def commit_and_push_all(clone: Path, message: str) -> str:
    git("add", "--force", "-A", cwd=clone)
    return commit_and_push(clone, message)


def app_config(clone: Path) -> Path:
    """The app config file of the realistic app (kept in its repository; `--app-config` takes it)."""
    return clone / "coderemote.yaml"
