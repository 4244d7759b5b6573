# CPU image: the serving install only (no TensorFlow), the same as `make serve-install` / `pip install .`;
# the default model is package data (eegstream/models/default), so the wheel carries it.
# Build: docker build -t eegstream .   Run: docker run --network host eegstream serve --host 0.0.0.0
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY eegstream ./eegstream
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LSLAPICFG=/etc/eegstream/lsl_api.cfg
RUN useradd --create-home --uid 10001 eegstream
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY docker/lsl_api.cfg /etc/eegstream/lsl_api.cfg
USER 10001
WORKDIR /home/eegstream
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["eegstream"]
CMD ["serve", "--host", "0.0.0.0"]
