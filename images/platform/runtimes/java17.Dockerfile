# Canonical Dockerfile of the java17 runtime, rendered by the platform for standard builds.
# Never edited per app: the app shapes its image only through .paas/build-env.sh,
# .paas/image-env.sh, catalog options and catalog services. The three markers are filled from
# images/platform/catalog.json; FLEET_* build args are set by the platform (bases pinned by
# digest after their signature was verified).
ARG FLEET_BUILD_BASE
ARG FLEET_RUNTIME_BASE
{{service-stages}}
FROM ${FLEET_BUILD_BASE} AS build
WORKDIR /workspace
COPY . .
# .paas/build-env.sh runs in the build environment before anything is compiled.
RUN if [ -f .paas/build-env.sh ]; then echo "paas: running .paas/build-env.sh"; sh -eu .paas/build-env.sh; fi
RUN find src -name '*.java' > /tmp/sources \
 && test -s /tmp/sources || { echo "no Java sources under src/" >&2; exit 1; }
RUN mkdir -p /out/classes /out/paas \
 && javac -d /out/classes @/tmp/sources \
 && jar --create --file /out/app.jar --main-class "$(cat .paas/main-class 2>/dev/null || echo Main)" -C /out/classes . \
 && if [ -f .paas/image-env.sh ]; then cp .paas/image-env.sh /out/paas/; fi

FROM ${FLEET_RUNTIME_BASE}
{{options}}
COPY --from=build /out/paas/ /opt/paas/
# .paas/image-env.sh runs while the image is built, so what it does lands in the image.
RUN if [ -f /opt/paas/image-env.sh ]; then echo "paas: running .paas/image-env.sh"; sh -eu /opt/paas/image-env.sh; fi \
 && rm -rf /opt/paas
{{services}}
RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build --chown=root:root /out/app.jar /app/app.jar
WORKDIR /app
USER app
ENTRYPOINT ["java", "-jar", "/app/app.jar"]
