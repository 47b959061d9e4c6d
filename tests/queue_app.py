"""The app gunicorn serves in tests/test_job_queue.py: RIIM plus two job kinds made of quick real commands."""
from app import create_app, job_kinds


def _kind(name: str, stages: int) -> job_kinds.JobKind:
    return job_kinds.JobKind(
        name=name, title={"es": name, "en": name}, parse=dict, model=lambda options: "animals",
        stages=lambda options: [(f"list-{n}", ["models", "list", "--models-dir", "{models_dir}"])
                                for n in range(1, stages + 1)])


QUICK, SLOW = _kind("test-quick", 1), _kind("test-slow", 5)


def create():
    for kind in (QUICK, SLOW):
        if kind.name not in job_kinds.KINDS:
            job_kinds.register(kind)
    return create_app()
