"""Generating: the one printer (jinja2 templates, quoting in ``nixstr``) and the atomic write of steps/."""
