# Static, non-root router image. The build line lives in the Makefile
# (build-static) so `make test` exercises exactly what this image runs.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build-static STATIC_OUT=/out/router STATIC_MODELSERVER_OUT=/out/modelserver

# distroless/static has no shell and no libc: the binary must be static,
# which build-static checks.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/router /router
# The example model server the manifests deploy as stable and canary.
COPY --from=build /out/modelserver /modelserver
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/router"]
CMD ["serve", "--config", "/etc/shadowsplit/config.yaml"]
