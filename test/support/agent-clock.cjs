// Preloaded into an agent under test (NODE_OPTIONS=--require …): its clock runs FERRY_TEST_CLOCK_FILE's
// milliseconds (a number, 0 when absent) ahead of the machine's, so a test moves the device's time
// without touching the server's. Read at most every 100 ms.
'use strict';
const { readFileSync } = require('node:fs');

const file = process.env.FERRY_TEST_CLOCK_FILE;
const machineNow = Date.now.bind(Date);
let offset = 0;
let readAt = -Infinity;
Date.now = () => {
  const now = machineNow();
  if (file && now - readAt > 100) {
    readAt = now;
    try {
      offset = Number(readFileSync(file, 'utf8')) || 0;
    } catch {
      offset = 0;
    }
  }
  return now + offset;
};
