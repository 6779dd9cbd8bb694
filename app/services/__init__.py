"""Work the routes delegate: each service does one job of the API over the CRUD layer."""
