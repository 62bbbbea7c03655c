// Opens a page in a browser over WebDriver BiDi (Firefox) or the DevTools protocol
// (Chromium), with puppeteer-core and the browser installed on the machine, and keeps
// it open until standard input closes or the process is told to stop. The page reports
// to its own server; this only drives the browser and prints what the page logs:
//
//   node suite/browse.mjs firefox /usr/bin/firefox-esr http://rpcws.test:8080/page.html [host]
//
// `host`, if given, resolves to 127.0.0.1 in the browser, so that a page can be loaded
// from a name that is not localhost (and so is not a secure context). Lines printed:
// "PID <browser's process id>", "BROWSER <version>", "CONSOLE <level>: <text>" and
// "PAGEERROR <text>".

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [name, executablePath, url, host] = process.argv.slice(2);
if (!['chromium', 'firefox'].includes(name) || !executablePath || !url) {
  console.error('usage: node suite/browse.mjs chromium|firefox EXECUTABLE URL [HOST]');
  process.exit(2);
}

const profile = await mkdtemp(join(tmpdir(), `rpcws-${name}-`));
const options =
  name === 'firefox'
    ? {
        browser: 'firefox',
        protocol: 'webDriverBiDi',
        extraPrefsFirefox: {
          // HOST (and its subdomains) resolve to the loopback address.
          ...(host && { 'network.dns.localDomains': host }),
          'network.proxy.type': 0, // no proxy, whatever the environment says
        },
      }
    : {
        browser: 'chrome',
        args: [
          '--no-sandbox', // as root
          '--disable-gpu',
          ...(host ? [`--host-resolver-rules=MAP ${host} 127.0.0.1`] : []),
        ],
      };

const browser = await puppeteer.launch({
  ...options,
  executablePath,
  headless: true,
  userDataDir: profile,
  handleSIGINT: false,
  handleSIGTERM: false,
  handleSIGHUP: false,
});

let closing;
function stop() {
  closing ??= browser
    .close()
    .catch((err) => console.error(`closing ${name}: ${err}`))
    .then(() => rm(profile, { recursive: true, force: true }))
    .finally(() => process.exit(0));
  return closing;
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop).on('error', stop).resume();

console.log(`PID ${browser.process()?.pid}`); // for the Go test, should this process die first
console.log(`BROWSER ${await browser.version()}`);
const page = await browser.newPage();
page.on('console', (msg) => console.log(`CONSOLE ${msg.type()}: ${msg.text()}`));
page.on('pageerror', (err) => console.log(`PAGEERROR ${err?.message ?? err}`));
await page.goto(url);
