"""A module without handle(): routing to it is a config error."""

VALUE = 1
