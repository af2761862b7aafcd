// mailfront's data plane is built on epoll: stop early, and say so, elsewhere.
if (process.platform !== 'linux') {
  console.error(`mailfront: the data plane needs Linux (epoll); this is ${process.platform}.`);
  process.exit(1);
}
