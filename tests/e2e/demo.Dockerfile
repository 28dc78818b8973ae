# Images for the example pods, built FROM scratch because nothing can be pulled in CI.
# The context (assembled by tests/e2e/run.sh) holds: busybox (static), podsignal (static),
# curl and the shared libraries it needs under lib/, and www/ (static pages for httpd).
#
# Target `shell`: an app image WITHOUT podsignal (busybox + curl), the way most users' images
# are: podsignal reaches it through an init container running `podsignal install`.
# Target `demo`: `shell` plus podsignal, for the examples' app and sidecar containers.
FROM scratch AS shell
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY lib/ /
COPY www/ /srv/www/
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 65532:65532
ENTRYPOINT []
CMD ["/bin/sh"]

FROM shell AS demo
COPY --chmod=0755 podsignal /usr/local/bin/podsignal
