# Builds the telemetry binary into a minimal image (used by compose.yaml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/telemetry ./cmd/telemetry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/telemetry /telemetry
EXPOSE 8080
ENTRYPOINT ["/telemetry"]
CMD ["serve"]
