"""XPS: read instrument files, fit regions across etch depth, quantify."""
