#!/bin/sh
# Verification: the image's tool runs and sees the base image's file.
set -e
out=$(docker run --rm "$1" hello)
test "$out" = "hello: hello from dockerpkg"
