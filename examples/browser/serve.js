// Serves the page and its bundle, nothing else, on one origin: run it
// (`npm start`, PORT=8080 by default) and open http://127.0.0.1:8080/. The
// gateway must list that origin in CRM_GATEWAY__CORS_ALLOWED_ORIGINS.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["dist/app.js", "text/javascript; charset=utf-8"],
};

/** Listens on 127.0.0.1:`port` (0 for any free port); resolves to the server. */
export function serve(port) {
  const server = createServer(async (request, response) => {
    const file = files[new URL(request.url, "http://x").pathname];
    if (!file) return response.writeHead(404).end();
    try {
      const body = await readFile(path.join(here, file[0]));
      response.writeHead(200, { "content-type": file[1] }).end(body);
    } catch {
      response.writeHead(500).end("not built: run `npm run build`");
    }
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await serve(Number(process.env.PORT ?? 8080));
  console.log(`http://127.0.0.1:${server.address().port}/`);
}
