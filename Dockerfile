# syntax=docker/dockerfile:1
# Build: make image (or: docker build --build-arg VERSION=$(git describe --always) -t extlb .)

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, in a layer of their own, so that source changes do not
# download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# The shipped binary needs only these three trees: fake/ and test/ hold test
# doubles and harnesses (cmd/extlb/deps_test.go keeps it so).
COPY cmd ./cmd
COPY controller ./controller
COPY providers ./providers
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/extlb ./cmd/extlb

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/extlb /extlb
USER 65532:65532
ENTRYPOINT ["/extlb"]
CMD ["controller"]
