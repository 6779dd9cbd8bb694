-- Per-tenant login roles (app/db/pools.py): a fingerprint of each tenant's current login secret, so
-- `sync` knows whether the role's password must be set (new key, or a role made before this design)
-- without storing the password or reading pg_authid (which only a superuser may).
ALTER TABLE tenants ADD COLUMN login_fingerprint text;
