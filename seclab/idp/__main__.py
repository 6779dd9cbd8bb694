"""`python -m seclab.idp init|rotate-keys|jwks` (the same commands as `lab idp ...`)."""

from seclab.commands.idp import app

app(prog_name="python -m seclab.idp")
