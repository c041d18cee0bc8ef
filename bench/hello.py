"""Floor (a): the smallest FastAPI app behind Mangum, as the two projects' own docs write it."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/api/v1/hello")
def hello() -> dict[str, str]:
    """The hello-world endpoint."""
    return {"message": "hello"}


handler = Mangum(app, lifespan="off")
