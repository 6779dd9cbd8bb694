"""ModSecurity + OWASP CRS 3.3.4 configuration of the seclab edge (templates rendered by Ansible and Pulumi)."""
