"""The lab edge: nginx templates (`nginx.conf.j2`, `snippets/*.j2`) rendered by Ansible and Pulumi alike."""
